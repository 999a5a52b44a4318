//! The rule list stored in the catalog: parsing it as the daemon does, and
//! changing it (add, remove, move), each change one transaction.
//!
//! The daemon's control server and `tierctl` (when the daemon is down and it
//! opens the catalog itself) both change rules through these functions.

use serde::{Deserialize, Serialize};

use super::{Rule, RuleError};
use crate::catalog::tiering::{self, RuleRow};
use crate::catalog::{Catalog, CatalogError};

/// The stored rules split into those that parse and those that do not (the
/// daemon ignores the latter).
#[derive(Debug, Default)]
pub struct StoredRules {
    /// `(id, rule)` in evaluation order.
    pub usable: Vec<(i64, Rule)>,
    /// `(id, why)` of each rule whose text no longer parses.
    pub broken: Vec<(i64, RuleError)>,
}

/// Parses stored rule rows, keeping their order.
pub fn parse_stored(rows: &[RuleRow]) -> StoredRules {
    let mut stored = StoredRules::default();
    for row in rows {
        match super::parse(&row.text) {
            Ok(rule) => stored.usable.push((row.id, rule)),
            Err(e) => stored.broken.push((row.id, e)),
        }
    }
    stored
}

/// A rule and where it stands in the list after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedRule {
    /// The rule's id (what `tierctl rule rm` and `rule move` take).
    pub id: i64,
    /// Its 1-based position; for a removed rule, the one it had.
    pub position: usize,
    /// How many rules there are after the change.
    pub rules: usize,
    /// The rule's text (canonical form).
    pub text: String,
}

/// Why a rule change was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// There is no rule with this id.
    #[error("no rule #{id}")]
    NotFound {
        /// The id asked for.
        id: i64,
    },
    /// The catalog could not be read or written.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Inserts `rule` at 1-based `position` (a position past the end, or none,
/// puts it last). `now_ns` is recorded as its creation time.
pub fn add(
    catalog: &Catalog,
    rule: &Rule,
    position: Option<usize>,
    now_ns: i64,
) -> Result<PlacedRule, EditError> {
    let text = rule.text.clone();
    let placed = catalog.exec("add rule", move |c| {
        let tx = c.transaction()?;
        let id = tiering::add_rule(&tx, &text, position, now_ns)?;
        // Inserted in this transaction, so it is there.
        let placed =
            placed(&tiering::rules(&tx)?, id).ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        tx.commit()?;
        Ok(placed)
    })?;
    Ok(placed)
}

/// Removes rule `id`; returns it as it stood before.
pub fn remove(catalog: &Catalog, id: i64) -> Result<PlacedRule, EditError> {
    catalog
        .exec("remove rule", move |c| {
            let tx = c.transaction()?;
            let Some(mut before) = placed(&tiering::rules(&tx)?, id) else {
                return Ok(None);
            };
            tiering::remove_rule(&tx, id)?;
            tx.commit()?;
            before.rules -= 1;
            Ok(Some(before))
        })?
        .ok_or(EditError::NotFound { id })
}

/// Moves rule `id` to 1-based `position` (past the end: last).
pub fn move_to(catalog: &Catalog, id: i64, position: usize) -> Result<PlacedRule, EditError> {
    catalog
        .exec("move rule", move |c| {
            let tx = c.transaction()?;
            if !tiering::move_rule(&tx, id, position)? {
                return Ok(None);
            }
            let placed = placed(&tiering::rules(&tx)?, id);
            tx.commit()?;
            Ok(placed)
        })?
        .ok_or(EditError::NotFound { id })
}

/// Rule `id`'s place in `rows` (in evaluation order).
fn placed(rows: &[RuleRow], id: i64) -> Option<PlacedRule> {
    let index = rows.iter().position(|r| r.id == id)?;
    Some(PlacedRule {
        id,
        position: index + 1,
        rules: rows.len(),
        text: rows[index].text.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogOptions;

    fn rule(text: &str) -> Rule {
        super::super::parse(text).unwrap()
    }

    #[test]
    fn add_remove_and_move_report_where_the_rule_stands() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&dir.path().join("c.db"), CatalogOptions::default()).unwrap();
        let a = add(&catalog, &rule("a/** -> cloud"), None, 1).unwrap();
        assert_eq!(
            (a.position, a.rules, a.text.as_str()),
            (1, 1, "a/** -> cloud")
        );
        let b = add(&catalog, &rule("pin b/**"), Some(1), 2).unwrap();
        assert_eq!((b.position, b.rules), (1, 2));
        let c = add(&catalog, &rule("c/* -> cloud"), Some(99), 3).unwrap();
        assert_eq!((c.position, c.rules), (3, 3));

        let moved = move_to(&catalog, c.id, 1).unwrap();
        assert_eq!((moved.id, moved.position, moved.rules), (c.id, 1, 3));
        let removed = remove(&catalog, b.id).unwrap();
        assert_eq!((removed.position, removed.rules), (2, 2));
        assert_eq!(removed.text, "pin b/**");

        assert!(matches!(remove(&catalog, b.id), Err(EditError::NotFound { id }) if id == b.id));
        assert!(matches!(
            move_to(&catalog, 999, 1),
            Err(EditError::NotFound { id: 999 })
        ));

        let rows = catalog.exec("read", |c| tiering::rules(c)).unwrap();
        let order: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(order, [c.id, a.id]);
        catalog.close().unwrap();
    }

    #[test]
    fn stored_rules_that_do_not_parse_are_set_aside() {
        let rows = [
            RuleRow {
                id: 1,
                position: 1,
                text: "a/** -> cloud".into(),
            },
            RuleRow {
                id: 2,
                position: 2,
                text: "a/** older 3 -> cloud".into(),
            },
        ];
        let stored = parse_stored(&rows);
        assert_eq!(stored.usable.len(), 1);
        assert_eq!(stored.usable[0].0, 1);
        assert_eq!(stored.broken.len(), 1);
        assert_eq!(stored.broken[0].0, 2);
    }
}
