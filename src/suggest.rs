//! "Did you mean …?" for names a user mistyped. The edit distance is
//! `strsim`'s (already in the tree through clap's own suggestions).

/// The closest candidate to `name`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, c)| *d <= limit(name.len().min(c.len())) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The edits a typo may have, by the shorter of the two names: one in a short name
/// (two edits turn `foo` into `cos`, which is no typo), then about one in
/// four characters.
fn limit(len: usize) -> usize {
    match len {
        0..=4 => 1,
        5..=8 => 2,
        n => n / 4,
    }
}

/// A suffix for a message: ` (did you mean 'x'?)` or nothing.
pub fn hint<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(name, candidates) {
        Some(c) => format!(" (did you mean '{c}'?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let c = ["max_elapsed", "internal_port", "source"];
        assert_eq!(did_you_mean("max_elpased", c), Some("max_elapsed"));
        assert_eq!(did_you_mean("sorce", c), Some("source"));
        assert_eq!(did_you_mean("zzz", c), None);
        // Short names: one edit, not two (`doc foo` must not offer `cos`).
        assert_eq!(did_you_mean("foo", ["cos", "abs", "floor"]), None);
        assert_eq!(did_you_mean("cso", ["cos"]), None);
        assert_eq!(did_you_mean("coss", ["cos"]), Some("cos"));
        assert_eq!(
            did_you_mean("sub_strin", ["sub_string"]),
            Some("sub_string")
        );
        assert_eq!(hint("zzz", c), "");
    }
}
