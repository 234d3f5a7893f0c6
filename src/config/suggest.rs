//! "Did you mean": the nearest of the names a word may have been meant as,
//! by edit distance, for misspelt variables, flags, commands and values.

/// Levenshtein distance between `a` and `b`, by characters.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The candidate nearest to `word` (ignoring case), if it is near enough to
/// be a slip: at most a third of the longer word's length in edits, and at
/// least one (`SOURCE` → `SOURCES`, `aws_s3` → `aws-s3`). The first of
/// equally near candidates wins.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let lower = c.to_lowercase();
        let d = distance(&word, &lower);
        let limit = (word.chars().count().max(lower.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("SOURCE", "SOURCES", 1),
            ("MAX_SKWE", "MAX_SKEW", 2),
            ("kitten", "sitting", 3),
            ("", "abc", 3),
        ] {
            assert_eq!(distance(a, b), d, "{a} {b}");
            assert_eq!(distance(b, a), d, "{b} {a}");
        }
    }

    #[test]
    fn the_nearest_name_within_reach() {
        let names = ["SOURCES", "PROFILE", "MAX_SKEW", "WARN_SKEW", "TIMEOUT"];
        assert_eq!(nearest("SOURCE", names), Some("SOURCES"));
        assert_eq!(nearest("max_skwe", names), Some("MAX_SKEW"));
        assert_eq!(nearest("PROFIL", names), Some("PROFILE"));
        assert_eq!(nearest("COLOUR", names), None);
        assert_eq!(nearest("", names), None);
        assert_eq!(nearest("aws_s3", ["aws", "aws-s3"]), Some("aws-s3"));
        assert_eq!(nearest("Json", ["text", "json"]), Some("json"));
    }
}
