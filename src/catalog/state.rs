//! [`FileState`]: where a file's data lives, as stored in `files.state`.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// A file's tiering state. Stored (and serialized) as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Local only.
    Hot,
    /// Being uploaded (transient).
    Uploading,
    /// Local, with a verified cloud copy.
    Premigrated,
    /// Local blocks being freed (transient).
    Releasing,
    /// A stub: the data is in the cloud only.
    Cold,
    /// Being brought back (transient).
    Recalling,
}

/// A state name that is not one of [`FileState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown file state `{0}`")]
pub struct UnknownState(pub String);

impl FileState {
    /// Every state, in lifecycle order.
    pub const ALL: [FileState; 6] = [
        FileState::Hot,
        FileState::Uploading,
        FileState::Premigrated,
        FileState::Releasing,
        FileState::Cold,
        FileState::Recalling,
    ];

    /// The name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Hot => "hot",
            FileState::Uploading => "uploading",
            FileState::Premigrated => "premigrated",
            FileState::Releasing => "releasing",
            FileState::Cold => "cold",
            FileState::Recalling => "recalling",
        }
    }

    /// Whether the engine is in the middle of moving the file (a crash
    /// leaves such states for `recover` to resolve).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FileState::Uploading | FileState::Releasing | FileState::Recalling
        )
    }

    /// Whether the file's other names (hard links) take this state too.
    pub fn is_settled(self) -> bool {
        !self.is_transient()
    }
}

impl std::fmt::Display for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FileState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FileState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

impl ToSql for FileState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for FileState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_sql_and_json() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for st in FileState::ALL {
            assert_eq!(st.to_string().parse::<FileState>(), Ok(st));
            let back: FileState = conn.query_row("SELECT ?1", [st], |r| r.get(0)).unwrap();
            assert_eq!(back, st);
            let text: String = conn.query_row("SELECT ?1", [st], |r| r.get(0)).unwrap();
            assert_eq!(text, st.as_str());
            assert_eq!(
                serde_json::to_string(&st).unwrap(),
                format!("\"{}\"", st.as_str())
            );
        }
        assert!("bogus".parse::<FileState>().is_err());
    }
}
