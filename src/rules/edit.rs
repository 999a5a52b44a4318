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
