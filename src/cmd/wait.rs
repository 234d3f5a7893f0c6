//! `skewguard wait` and `skewguard exec -- CMD`.
