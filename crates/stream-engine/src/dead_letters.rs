//! Dead letters: an unusable input record, with its original key and bytes, and headers that
//! say what was wrong and where it came from.

use crate::job::Rejection;

/// The headers of a dead letter: the reason (`error`, `error.kind`) and the source
/// (`source.topic`, `source.partition`, `source.offset`).
pub fn headers(
    reason: &dyn Rejection,
    topic: &str,
    partition: i32,
    offset: i64,
) -> [(&'static str, String); 5] {
    [
        ("error", reason.to_string()),
        ("error.kind", reason.kind().to_owned()),
        ("source.topic", topic.to_owned()),
        ("source.partition", partition.to_string()),
        ("source.offset", offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bad;
    impl std::fmt::Display for Bad {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("record value is not valid JSON")
        }
    }
    impl Rejection for Bad {
        fn kind(&self) -> &'static str {
            "not_json"
        }
    }

    #[test]
    fn dead_letters_carry_reason_and_source() {
        assert_eq!(
            headers(&Bad, "in", 3, 5).map(|(k, v)| format!("{k}={v}")),
            [
                "error=record value is not valid JSON",
                "error.kind=not_json",
                "source.topic=in",
                "source.partition=3",
                "source.offset=5",
            ]
        );
    }
}
