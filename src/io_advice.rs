//! What to tell an operator about a file-system error at start-up: which path, what is
//! wrong with it in plain words, and what to do, in one line. Storage errors name the
//! path and say what to do; they never end in a bare `Io(Os { … })`.

use std::io::ErrorKind;
use std::path::Path;

/// One line for `error` at `path`: `PATH: what is wrong; what to do`.
pub fn describe(path: &Path, error: &std::io::Error) -> String {
    format!("{}: {}", path.display(), explain(error))
}

/// What is wrong and what to do, for `error`.
pub fn explain(error: &std::io::Error) -> String {
    let advice = match error.kind() {
        ErrorKind::NotADirectory | ErrorKind::AlreadyExists => {
            "a file stands where keyledger needs a directory: move the file away, or choose another --data-dir"
        }
        ErrorKind::IsADirectory => {
            "a directory stands where keyledger needs a file: move the directory away, or choose another --data-dir"
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            "the user running keyledger may not write there: fix the owner or the permissions, or choose another --data-dir"
        }
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "the disk is full: free space, then start again",
        ErrorKind::NotFound => "it does not exist: check the path",
        _ => "check the disk and the path, then start again",
    };
    format!("{error}; {advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_explanation_keeps_the_system_error_and_says_what_to_do() {
        let path = Path::new("/srv/keyledger/log");
        for kind in [
            ErrorKind::NotADirectory,
            ErrorKind::IsADirectory,
            ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied,
            ErrorKind::StorageFull,
            ErrorKind::NotFound,
            ErrorKind::Other,
        ] {
            let line = describe(path, &std::io::Error::new(kind, "the system's words"));
            assert!(line.starts_with("/srv/keyledger/log: the system's words; "), "{line}");
            assert!(line.contains(": ") && !line.ends_with('.'), "{line}");
        }
        let file = describe(path, &std::io::Error::from(ErrorKind::NotADirectory));
        assert!(file.contains("a file stands where keyledger needs a directory"), "{file}");
    }
}
