//! The sequential specification of one key: what each command does to the key's value and
//! which answers it may give. The search (`search.rs`) only asks this file; it knows nothing
//! about reads or writes itself.

use super::history::{Command, Response};

/// Applies `command` to `value` (the key's value, `None` when absent) and returns the value
/// after it, or `None` when `response` is an impossible answer from `value`.
///
/// `response` is `None` for an operation whose outcome is unknown: if it took effect it did
/// what it does from `value`, whatever that is, so it is always allowed. (An unknown read
/// constrains nothing and never reaches the search.)
pub(super) fn step(
    value: Option<u64>,
    command: &Command,
    response: Option<&Response>,
) -> Option<Option<u64>> {
    match (*command, response) {
        (Command::Write { value: written, .. }, _) => Some(Some(written)),
        (Command::Read { .. }, Some(Response::Read(read))) => (*read == value).then_some(value),
        (Command::Read { .. }, _) => Some(value),
        (Command::CompareAndSet { expected, new, .. }, answer) => {
            let applies = expected == value;
            match answer {
                Some(Response::CompareAndSet(said)) if *said != applies => None,
                _ => Some(if applies { Some(new) } else { value }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: u64 = 0;

    #[test]
    fn a_write_always_applies_and_a_read_must_see_the_value() {
        let write = Command::Write { key: KEY, value: 5 };
        assert_eq!(step(None, &write, Some(&Response::Write)), Some(Some(5)));
        assert_eq!(step(Some(1), &write, None), Some(Some(5)));
        let read = Command::Read { key: KEY };
        assert_eq!(
            step(Some(5), &read, Some(&Response::Read(Some(5)))),
            Some(Some(5))
        );
        assert_eq!(step(Some(5), &read, Some(&Response::Read(None))), None);
        assert_eq!(step(None, &read, Some(&Response::Read(None))), Some(None));
        assert_eq!(step(None, &read, Some(&Response::Read(Some(5)))), None);
    }

    #[test]
    fn a_compare_and_set_answer_must_match_the_comparison() {
        let cas = Command::CompareAndSet {
            key: KEY,
            expected: Some(1),
            new: 2,
        };
        let yes = Response::CompareAndSet(true);
        let no = Response::CompareAndSet(false);
        assert_eq!(step(Some(1), &cas, Some(&yes)), Some(Some(2)));
        assert_eq!(step(Some(1), &cas, Some(&no)), None);
        assert_eq!(step(Some(3), &cas, Some(&no)), Some(Some(3)));
        assert_eq!(step(Some(3), &cas, Some(&yes)), None);
        assert_eq!(step(None, &cas, Some(&no)), Some(None));
        // Unknown outcome: it did whatever it does from the value it met.
        assert_eq!(step(Some(1), &cas, None), Some(Some(2)));
        assert_eq!(step(Some(3), &cas, None), Some(Some(3)));
        let create = Command::CompareAndSet {
            key: KEY,
            expected: None,
            new: 7,
        };
        assert_eq!(step(None, &create, Some(&yes)), Some(Some(7)));
        assert_eq!(step(Some(7), &create, Some(&yes)), None);
    }
}
