//! Files without Rhai: atomic writes ([`write_atomic`]), and bounded
//! reads: a file a playbook names is read
//! only if it is a regular file no larger than a cap, checked before the
//! first byte, and read through `take()` so a file that grows while it is
//! read cannot get past the cap either. `/dev/zero`, a FIFO or a socket
//! would otherwise block or fill memory forever.

use std::io::Read;
use std::path::Path;

/// The cap on a data file a primitive reads (`read_json`, `read_yaml`,
/// `discover_port`'s `file` source): 16 MiB.
pub const FILE_CAP: u64 = 16 * 1024 * 1024;

/// Why a file was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// It does not exist.
    Missing,
    /// It exists but is not something to read (message says what).
    Refused(String),
    /// The operating system refused (permissions, I/O).
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing => f.write_str("it does not exist"),
            ReadError::Refused(m) | ReadError::Io(m) => f.write_str(m),
        }
    }
}

/// What kind of file this is, for a refusal.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The largest playbook or module runbook reads.
pub const MAX_SCRIPT_BYTES: u64 = 4 * 1024 * 1024;

/// The last line an error position can name (Rhai counts lines in 16 bits).
pub const MAX_SCRIPT_LINES: usize = 65_535;

/// Why [`read_capped`] read nothing.
enum Why {
    Missing,
    Io(String),
    NotRegular(&'static str),
    TooLarge(u64),
}

/// The one bounded read: a regular file (symlinks followed) of at most
/// `cap` bytes, its type checked before opening and again on the handle.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, Why> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Why::Missing,
        _ => Why::Io(e.to_string()),
    })?;
    if !meta.file_type().is_file() {
        return Err(Why::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(Why::TooLarge(meta.len()));
    }
    // O_NONBLOCK: had the path been swapped for a FIFO since the check,
    // opening it must not hang; the type is checked again on the handle.
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| Why::Io(e.to_string()))?;
    let meta = file.metadata().map_err(|e| Why::Io(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(Why::NotRegular(kind_of(&meta.file_type())));
    }
    let mut buf = Vec::with_capacity(meta.len().min(cap) as usize);
    // One byte past the cap tells a file that grew apart from one at it.
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Why::Io(e.to_string()))?;
    if buf.len() as u64 > cap {
        return Err(Why::TooLarge(buf.len() as u64));
    }
    Ok(buf)
}

/// Read `path` as bytes: a regular file (symlinks followed) of at most
/// `cap` bytes.
pub fn read_bytes(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read_capped(path, cap).map_err(|why| match why {
        Why::Missing => ReadError::Missing,
        Why::Io(m) => ReadError::Io(m),
        Why::NotRegular(kind) => ReadError::Refused(format!(
            "it is {kind}, not a regular file; give the path of a data file"
        )),
        Why::TooLarge(len) => too_large(len, cap),
    })
}

/// Read a playbook or module (`runbook run`, `check`, `test`, `job`, and
/// every import): a regular file of at most [`MAX_SCRIPT_BYTES`] and
/// [`MAX_SCRIPT_LINES`] lines, UTF-8. A FIFO or a symlink to `/dev/zero`
/// is refused before a byte is read. The message names the file and the fix.
pub fn read_script(path: &Path) -> Result<String, String> {
    let bytes = read_capped(path, MAX_SCRIPT_BYTES).map_err(|why| match why {
        Why::Missing => format!(
            "playbook not found: {} (run from the project's folder, or give the path to the .rhai file)",
            path.display()
        ),
        Why::Io(e) => format!("cannot read {}: {e}", path.display()),
        Why::NotRegular("a directory") => format!(
            "{} is a folder; give a playbook file (*.rhai)",
            path.display()
        ),
        Why::NotRegular(kind) => format!(
            "{} is not a regular file ({kind}); give a playbook file (*.rhai)",
            path.display()
        ),
        Why::TooLarge(len) => format!(
            "{} is {len} bytes; a playbook may have at most {MAX_SCRIPT_BYTES} (split it into modules)",
            path.display()
        ),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("{} is not UTF-8 text ({e})", path.display()))?;
    let lines = text.lines().count();
    if lines > MAX_SCRIPT_LINES {
        return Err(format!(
            "{} has {lines} lines; error positions can name only the first {MAX_SCRIPT_LINES}: split it into modules",
            path.display()
        ));
    }
    Ok(text)
}

/// Read `path` as UTF-8 text, bounded like [`read_bytes`].
pub fn read_text(path: &Path, cap: u64) -> Result<String, ReadError> {
    let bytes = read_bytes(path, cap)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Refused(format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn too_large(len: u64, cap: u64) -> ReadError {
    ReadError::Refused(format!(
        "it is {} bytes, over the {} cap on data files; a playbook reads small data files (JSON, YAML), not this one",
        len,
        fmt_bytes(cap)
    ))
}

/// A byte count the way people read it (`4 MiB`, `512 KiB`, `100 bytes`).
pub fn fmt_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * 1024 * 1024;
    match n {
        n if n >= GIB && n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// Write `text` to `path` atomically: a temporary file in the same folder,
/// fsync, rename, fsync the folder. Readers see the old file or the new
/// one, never half of one — also after `kill -9`.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".runbook-")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Open the folder `rel` beneath the folder `root` for `*at` calls,
/// creating what is missing. No component may lead out of `root`: every
/// step is resolved by the kernel with `RESOLVE_BENEATH` (`openat2`), so a
/// folder swapped for a symlink at any moment cannot take a write outside,
/// as a path checked and then used could.
fn open_dir_beneath(
    root: &std::os::fd::OwnedFd,
    rel: &Path,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::path::Component;
    let mut dir = root.try_clone()?;
    let mut prefix = std::path::PathBuf::new();
    for comp in rel.components() {
        if comp == Component::CurDir {
            continue;
        }
        let Component::Normal(name) = comp else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "only plain folder names may lead to the file",
            ));
        };
        prefix.push(name);
        dir = match open_dir_at(root, &prefix) {
            Err(nix::errno::Errno::ENOENT) => {
                // mkdirat does not follow a last component: a symlink
                // planted here makes it fail (EEXIST), and the open below
                // resolves beneath the root again.
                match nix::sys::stat::mkdirat(
                    &dir,
                    name,
                    nix::sys::stat::Mode::from_bits_truncate(0o777),
                ) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_dir_at(root, &prefix)?
            }
            r => r?,
        };
    }
    Ok(dir)
}

/// `openat2(root, rel, O_DIRECTORY, RESOLVE_BENEATH)`; where the kernel
/// has no `openat2` (before Linux 5.6), a walk that follows no symlink.
fn open_dir_at(root: &std::os::fd::OwnedFd, rel: &Path) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, ResolveFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if rel.as_os_str().is_empty() {
        return root.try_clone().map_err(|_| nix::errno::Errno::EMFILE);
    }
    let how = nix::fcntl::OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(root, rel, how) {
        Err(nix::errno::Errno::ENOSYS) => walk_beneath(root, rel, flags),
        r => r,
    }
}

/// [`open_dir_at`] without `openat2`: one `openat` per folder name, none
/// followed if it is a symlink, and `..` or an absolute path refused as
/// `RESOLVE_BENEATH` refuses them (`EXDEV`).
fn walk_beneath(
    root: &std::os::fd::OwnedFd,
    rel: &Path,
    flags: nix::fcntl::OFlag,
) -> nix::Result<std::os::fd::OwnedFd> {
    use std::path::Component;
    let mut dir = root.try_clone().map_err(|_| nix::errno::Errno::EMFILE)?;
    for comp in rel.components() {
        let name = match comp {
            Component::CurDir => continue,
            Component::Normal(name) => name,
            _ => return Err(nix::errno::Errno::EXDEV),
        };
        dir = nix::fcntl::openat(
            &dir,
            name,
            flags | nix::fcntl::OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::empty(),
        )?;
    }
    Ok(dir)
}

/// Write `bytes` to `rel` beneath the folder `root`, atomically (a new
/// file with an unpredictable name, `O_EXCL|O_NOFOLLOW`, fsync, `renameat`
/// in the same folder, fsync the folder), creating missing folders. Every
/// step works on a folder handle resolved beneath `root`, never on a path
/// checked earlier: an error `EXDEV` or `ELOOP` means a symlink led out.
pub fn write_beneath(root: &Path, rel: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use nix::fcntl::OFlag;
    use std::io::Write;
    let (root, name) = root_and_name(root, rel)?;
    let dir = open_dir_beneath(&root, rel.parent().unwrap_or(Path::new("")))?;
    let tmp = format!(".runbook-{:016x}.tmp", rand::random::<u64>());
    let fd = nix::fcntl::openat(
        &dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )?;
    let mut file = std::fs::File::from(fd);
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| Ok(nix::fcntl::renameat(&dir, tmp.as_str(), &dir, name)?));
    if let Err(e) = written {
        let _ = nix::unistd::unlinkat(&dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    let _ = nix::unistd::fsync(&dir);
    Ok(())
}

/// The folder `root` opened as a handle, and the file name `rel` ends in.
fn root_and_name<'a>(
    root: &Path,
    rel: &'a Path,
) -> std::io::Result<(std::os::fd::OwnedFd, &'a std::ffi::OsStr)> {
    use nix::fcntl::OFlag;
    let name = rel.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let root = nix::fcntl::openat(
        nix::fcntl::AT_FDCWD,
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok((root, name))
}

/// Remove the file `rel` beneath the folder `root` (never a folder), with
/// the same resolution as [`write_beneath`]. `Ok(false)` when it was not
/// there.
pub fn remove_beneath(root: &Path, rel: &Path) -> std::io::Result<bool> {
    let (root, name) = root_and_name(root, rel)?;
    let dir = match open_dir_at(&root, rel.parent().unwrap_or(Path::new(""))) {
        Ok(d) => d,
        Err(nix::errno::Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_fifos_are_refused_before_reading() {
        let err = read_bytes(Path::new("/dev/zero"), FILE_CAP).unwrap_err();
        assert!(
            matches!(&err, ReadError::Refused(m) if m.contains("a character device")),
            "{err:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_bytes(&fifo, FILE_CAP).unwrap_err();
        assert!(
            matches!(&err, ReadError::Refused(m) if m.contains("FIFO")),
            "{err:?}"
        );
        let err = read_bytes(dir.path(), FILE_CAP).unwrap_err();
        assert!(
            matches!(&err, ReadError::Refused(m) if m.contains("a directory")),
            "{err:?}"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(fmt_bytes(4 * 1024 * 1024), "4 MiB");
        assert_eq!(fmt_bytes(64 * 1024), "64 KiB");
        assert_eq!(fmt_bytes(100), "100 bytes");
        assert_eq!(fmt_bytes(10_000_000_000), "9536.7 MiB");
    }

    /// The walk for kernels without `openat2` refuses what
    /// `RESOLVE_BENEATH` refuses: `..`, an absolute path, a symlink.
    #[test]
    fn the_walk_without_openat2_stays_beneath_the_root() {
        use nix::fcntl::OFlag;
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("a", r.join("link")).unwrap();
        let fd = nix::fcntl::open(
            r,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        assert!(walk_beneath(&fd, Path::new("./a/b"), flags).is_ok());
        assert_eq!(
            walk_beneath(&fd, Path::new("a/../.."), flags).err(),
            Some(nix::errno::Errno::EXDEV)
        );
        assert_eq!(
            walk_beneath(&fd, Path::new("/tmp"), flags).err(),
            Some(nix::errno::Errno::EXDEV)
        );
        // O_NOFOLLOW with O_DIRECTORY: ENOTDIR on a symlink.
        assert_eq!(
            walk_beneath(&fd, Path::new("link/b"), flags).err(),
            Some(nix::errno::Errno::ENOTDIR)
        );
    }

    #[test]
    fn writes_stay_beneath_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        write_beneath(r, Path::new("./a/b/c.json"), b"1").unwrap();
        write_beneath(r, Path::new("a/b/c.json"), b"2").unwrap();
        assert_eq!(std::fs::read(r.join("a/b/c.json")).unwrap(), b"2");
        assert_eq!(
            std::fs::read_dir(r.join("a/b")).unwrap().count(),
            1,
            "no temp file left"
        );
        // A symlink inside that stays inside is fine; one leading out is not.
        std::os::unix::fs::symlink("a", r.join("in")).unwrap();
        write_beneath(r, Path::new("in/x.json"), b"3").unwrap();
        assert_eq!(std::fs::read(r.join("a/x.json")).unwrap(), b"3");
        std::os::unix::fs::symlink(outside.path(), r.join("out")).unwrap();
        let err = write_beneath(r, Path::new("out/x.json"), b"4").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::EXDEV), "{err}");
        std::os::unix::fs::symlink("../..", r.join("a/up")).unwrap();
        assert!(write_beneath(r, Path::new("a/up/x.json"), b"5").is_err());
        assert!(write_beneath(r, Path::new("../x.json"), b"6").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A symlink as the file itself is replaced, not followed.
        let target = outside.path().join("t");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, r.join("link.json")).unwrap();
        write_beneath(r, Path::new("link.json"), b"7").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(std::fs::read(r.join("link.json")).unwrap(), b"7");
        // Removing: only beneath, and only files.
        assert!(remove_beneath(r, Path::new("link.json")).unwrap());
        assert!(!remove_beneath(r, Path::new("link.json")).unwrap());
        assert!(remove_beneath(r, Path::new("out/t")).is_err());
        assert!(target.exists());
    }

    #[test]
    fn size_is_checked_against_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, vec![b' '; 100]).unwrap();
        assert_eq!(read_bytes(&p, 100).unwrap().len(), 100);
        let err = read_bytes(&p, 99).unwrap_err();
        assert!(
            matches!(&err, ReadError::Refused(m) if m.contains("100 bytes, over the 99 bytes cap")),
            "{err:?}"
        );
        assert_eq!(
            read_bytes(&dir.path().join("nope"), 10),
            Err(ReadError::Missing)
        );
    }
}
