//! The 48-byte NTP packet: encoding, parsing, validation and offset math.
