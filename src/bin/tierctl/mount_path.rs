//! Turning a path given on the command line into a catalog path (relative to
//! the mount root).

use std::path::{Component, Path, PathBuf};

/// A directory that a user-given absolute path may be under, e.g. the
/// mountpoint or the hot dir, with a name for messages.
#[derive(Debug, Clone, Copy)]
pub struct Root<'a> {
    /// How messages call it, e.g. "the mountpoint".
    pub name: &'a str,
    /// The directory.
    pub path: &'a Path,
}

/// Resolves `input` to a path relative to the mount root.
///
/// A relative `input` is taken as relative to the mount root (not to the
/// current directory). An absolute one must lie under one of `roots`. `.`
/// and `..` are resolved lexically (symlinks are not followed, since the
/// catalog records links as they are), except that the parent directory is
/// canonicalised as a fallback when the lexical form is under no root.
/// `note` is appended to the error when no root matches (e.g. why a root is
/// missing).
pub fn to_mount_relative(input: &Path, roots: &[Root<'_>], note: &str) -> Result<PathBuf, String> {
    let relative = if input.is_absolute() {
        strip_any_root(input, roots).ok_or_else(|| not_under_roots(input, roots, note))?
    } else {
        normalise_relative(input)
            .ok_or_else(|| format!("{} leads outside the mount root", input.display()))?
    };
    if relative.as_os_str().is_empty() {
        return Err(format!(
            "{} is the mount root itself; name a file below it",
            input.display()
        ));
    }
    Ok(relative)
}

/// `input` (absolute) relative to the first root it lies under.
fn strip_any_root(input: &Path, roots: &[Root<'_>]) -> Option<PathBuf> {
    let lexical = normalise_absolute(input);
    if let Some(rel) = strip(&lexical, roots, |p| Some(normalise_absolute(p))) {
        return Some(rel);
    }
    // Retry with symlinks in the directories resolved (e.g. /mnt → /media).
    let canonical = canonicalise_parent(&lexical)?;
    strip(&canonical, roots, |p| p.canonicalize().ok())
}

fn strip(
    path: &Path,
    roots: &[Root<'_>],
    prepare: impl Fn(&Path) -> Option<PathBuf>,
) -> Option<PathBuf> {
    roots.iter().find_map(|root| {
        let root = prepare(root.path)?;
        path.strip_prefix(&root).ok().map(Path::to_path_buf)
    })
}

/// `path` with its parent directory canonicalised and its last component kept.
fn canonicalise_parent(path: &Path) -> Option<PathBuf> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Some(parent.canonicalize().ok()?.join(name)),
        _ => path.canonicalize().ok(),
    }
}

fn not_under_roots(input: &Path, roots: &[Root<'_>], note: &str) -> String {
    let places: Vec<String> = roots
        .iter()
        .map(|r| format!("{} {}", r.name, r.path.display()))
        .collect();
    let mut msg = format!("{} is not under {}", input.display(), places.join(" or "));
    if !note.is_empty() {
        msg.push_str(" (");
        msg.push_str(note);
        msg.push(')');
    }
    msg.push_str("; give the path relative to the mount root instead");
    msg
}

/// Resolves `.` and `..` in an absolute path; `..` at `/` stays at `/`.
fn normalise_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Resolves `.` and `..` in a relative path; `None` if `..` climbs above it.
fn normalise_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots<'a>(mount: &'a Path, hot: &'a Path) -> [Root<'a>; 2] {
        [
            Root {
                name: "the mountpoint",
                path: mount,
            },
            Root {
                name: "the hot dir",
                path: hot,
            },
        ]
    }

    fn resolve(input: &str) -> Result<PathBuf, String> {
        let r = roots(Path::new("/mnt/data"), Path::new("/srv/hot"));
        to_mount_relative(Path::new(input), &r, "")
    }

    #[test]
    fn relative_paths_are_relative_to_the_mount_root() {
        assert_eq!(resolve("docs/a.pdf").unwrap(), Path::new("docs/a.pdf"));
        assert_eq!(
            resolve("./docs//x/../a.pdf").unwrap(),
            Path::new("docs/a.pdf")
        );
    }

    #[test]
    fn absolute_paths_under_either_root() {
        assert_eq!(
            resolve("/mnt/data/docs/a.pdf").unwrap(),
            Path::new("docs/a.pdf")
        );
        assert_eq!(
            resolve("/srv/hot/docs/a.pdf").unwrap(),
            Path::new("docs/a.pdf")
        );
        assert_eq!(
            resolve("/mnt/data/x/../docs/./a.pdf").unwrap(),
            Path::new("docs/a.pdf")
        );
    }

    #[test]
    fn escaping_and_foreign_paths_are_refused() {
        let e = resolve("../etc/passwd").unwrap_err();
        assert!(e.contains("outside the mount root"), "{e}");
        let e = resolve("/mnt/data/../other/a").unwrap_err();
        assert!(
            e.contains("not under the mountpoint /mnt/data or the hot dir /srv/hot"),
            "{e}"
        );
        let e = resolve("/mnt/database/a").unwrap_err();
        assert!(e.contains("not under"), "{e}");
    }

    #[test]
    fn the_root_itself_is_refused() {
        for input in ["/mnt/data", "/srv/hot/", ".", "a/.."] {
            let e = resolve(input).unwrap_err();
            assert!(e.contains("mount root itself"), "{input}: {e}");
        }
    }

    #[test]
    fn note_explains_missing_roots() {
        let hot = [Root {
            name: "the hot dir",
            path: Path::new("/srv/hot"),
        }];
        let e =
            to_mount_relative(Path::new("/mnt/data/a"), &hot, "daemon not running").unwrap_err();
        assert!(e.contains("(daemon not running)"), "{e}");
    }

    #[test]
    fn symlinked_parent_directories_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("docs")).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let r = [Root {
            name: "the hot dir",
            path: &real,
        }];
        let rel = to_mount_relative(&link.join("docs/a.pdf"), &r, "").unwrap();
        assert_eq!(rel, Path::new("docs/a.pdf"));
    }
}
