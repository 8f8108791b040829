//! An execution's labels, set by key; the `system.` ones are the engine's.

/// The prefix of the labels only the engine sets (`system.correlationId`).
pub const SYSTEM_PREFIX: &str = "system.";

/// The label every execution carries, its id unless its creator set it.
pub const CORRELATION_ID: &str = "system.correlationId";

/// Why labels were not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// A `system.` label the execution does not have with this value.
    #[error("system labels are set by the engine only, offending label: {key}={value}")]
    System { key: String, value: String },
    #[error("label `{0}` is given twice")]
    Twice(String),
    #[error("a label has an empty key (its value is `{0}`)")]
    EmptyKey(String),
}

/// `labels` with each of `given` set: a key they have takes its new value
/// in place, a new key goes at the end, in the order given. A label with
/// an empty key and an empty value is skipped (a form's empty row). A
/// `system.` label may be given only as `labels` have it already, so that
/// a client may send back every label it read.
pub fn merge(
    labels: &[(String, String)],
    given: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, LabelError> {
    let mut merged = labels.to_vec();
    let mut seen: Vec<&str> = Vec::with_capacity(given.len());
    for (key, value) in &given {
        if key.is_empty() {
            if value.is_empty() {
                continue;
            }
            return Err(LabelError::EmptyKey(value.clone()));
        }
        if seen.contains(&key.as_str()) {
            return Err(LabelError::Twice(key.clone()));
        }
        seen.push(key);
        if key.starts_with(SYSTEM_PREFIX) && !labels.iter().any(|(k, v)| k == key && v == value) {
            return Err(LabelError::System {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    for (key, value) in given {
        if !key.is_empty() {
            set(&mut merged, key, value);
        }
    }
    Ok(merged)
}

/// Sets label `key`: in place if `labels` have it, else at the end.
pub fn set(labels: &mut Vec<(String, String)>, key: String, value: String) {
    match labels.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => labels.push((key, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_known_key_changes_in_place_and_a_new_one_goes_last() {
        let labels = pairs(&[("team", "a"), ("system.correlationId", "x"), ("env", "dev")]);
        let merged = merge(
            &labels,
            pairs(&[("new", "1"), ("team", "b"), ("other", "2")]),
        )
        .unwrap();
        assert_eq!(
            merged,
            pairs(&[
                ("team", "b"),
                ("system.correlationId", "x"),
                ("env", "dev"),
                ("new", "1"),
                ("other", "2"),
            ])
        );
    }

    #[test]
    fn system_labels_may_only_be_sent_back_as_they_are() {
        let labels = pairs(&[("system.correlationId", "x")]);
        // Sent back unchanged: allowed, nothing changes.
        assert_eq!(
            merge(&labels, pairs(&[("system.correlationId", "x")])).unwrap(),
            labels
        );
        for (key, value) in [("system.correlationId", "y"), ("system.readOnly", "true")] {
            assert_eq!(
                merge(&labels, pairs(&[("a", "1"), (key, value)])),
                Err(LabelError::System {
                    key: key.into(),
                    value: value.into()
                })
            );
        }
    }

    #[test]
    fn empty_rows_are_skipped_and_bad_lists_refused() {
        let labels = pairs(&[("a", "1")]);
        assert_eq!(
            merge(&labels, pairs(&[("", ""), ("b", "")])).unwrap(),
            pairs(&[("a", "1"), ("b", "")])
        );
        assert_eq!(
            merge(&labels, pairs(&[("", "v")])),
            Err(LabelError::EmptyKey("v".into()))
        );
        assert_eq!(
            merge(&labels, pairs(&[("b", "1"), ("b", "2")])),
            Err(LabelError::Twice("b".into()))
        );
        // A refused list changes nothing, even in part.
        assert_eq!(
            merge(&labels, pairs(&[("a", "9"), ("b", "1"), ("b", "2")])),
            Err(LabelError::Twice("b".into()))
        );
    }
}
