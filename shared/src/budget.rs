//! IAM's inline-policy budget for a user: 2,048 characters in total over all
//! its inline policies, whitespace not counted. Not raisable.

pub const USER_INLINE_POLICY_LIMIT: usize = 2048;

/// Characters IAM counts in a policy document.
pub fn counted_chars(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

/// The characters already used by `documents`, and whether `new` still fits.
pub fn fits<'a>(documents: impl IntoIterator<Item = &'a str>, new: &str) -> (usize, bool) {
    let used: usize = documents.into_iter().map(counted_chars).sum();
    (used, used + counted_chars(new) <= USER_INLINE_POLICY_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_whitespace_when_counting_then_it_is_not_counted() {
        assert_eq!(counted_chars("{ \"a\" :\n\t1 }"), 7);
    }

    #[test]
    fn given_existing_policies_when_adding_then_exactly_2048_fits_and_2049_does_not() {
        let existing = "x".repeat(2000);
        assert_eq!(fits([existing.as_str()], &"y".repeat(48)), (2000, true));
        assert_eq!(fits([existing.as_str()], &"y".repeat(49)), (2000, false));
    }
}
