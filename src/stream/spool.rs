//! The spool of one client's stream: an append-only file
//! `<data-dir>/<client_id>.spool`, bounded by rotation.
//!
//! Only the writer thread appends, and only whole lines, so the committed
//! length of a generation ([`Gen::len`]) is always a line boundary: the
//! reader never sees half a line. When an append would take the file past
//! `--spool-max-bytes`, the writer renames it to `<client_id>.spool.1`
//! (replacing the generation before it), starts a new empty file, and seals
//! the old generation. So at most two generations, about twice the limit,
//! are on disk per client, and a resume can reach back one rotation.
//!
//! A generation's epoch is its file identity (`dev:inode`), so it is stable
//! across server restarts and changes whenever the file is replaced.
//! This module does no networking.

use crate::follow::epoch_of;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One spool file: the current one, or the rotated one before it.
#[derive(Debug)]
pub struct Gen {
    /// The file's identity, sent as `epoch`.
    pub epoch: String,
    /// Open for reading (and appending, for the current generation).
    pub file: File,
    /// Bytes of complete lines committed to this file.
    pub len: AtomicU64,
    /// Set once the writer has moved on to a newer generation: `len` is final.
    pub sealed: AtomicBool,
}

/// Where a reader starts, chosen from `start`'s `from` and `epoch`.
#[derive(Debug, Clone)]
pub struct StartPoint {
    /// The generation to read first.
    pub gen: Arc<Gen>,
    /// The byte offset in it.
    pub pos: u64,
    /// False when the offset asked for could not be honoured exactly (its
    /// epoch is no longer spooled), and the replay starts at the oldest
    /// line kept instead.
    pub resumed: bool,
}

/// A client's spool: its generations, oldest first, the last one current.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    old_path: PathBuf,
    max_bytes: u64,
    gens: Mutex<VecDeque<Arc<Gen>>>,
}

impl Spool {
    /// Opens (creating if needed) the spool of `client_id` in `dir`, keeping
    /// what earlier streams of this client wrote there.
    pub fn open(dir: &Path, client_id: &str, max_bytes: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{client_id}.spool"));
        let old_path = dir.join(format!("{client_id}.spool.1"));
        let mut gens = VecDeque::with_capacity(2);
        if let Ok(file) = File::open(&old_path) {
            let gen = Gen::new(file)?;
            gen.sealed.store(true, Ordering::Release);
            gens.push_back(Arc::new(gen));
        }
        gens.push_back(Arc::new(Gen::new(open_append(&path)?)?));
        Ok(Spool {
            path,
            old_path,
            max_bytes,
            gens: Mutex::new(gens),
        })
    }

    /// The generation being written.
    pub fn current(&self) -> Arc<Gen> {
        let gens = self.lock();
        gens.back()
            .expect("a spool always has a current file")
            .clone()
    }

    /// Where a reader starts: the current end without `from`; with it, just
    /// after offset `from` of generation `epoch` (the current one when no
    /// epoch is given), else the oldest line kept.
    pub fn start_point(&self, from: Option<u64>, epoch: Option<&str>) -> StartPoint {
        let gens = self.lock();
        let current = gens.back().expect("a spool always has a current file");
        let Some(from) = from else {
            return StartPoint {
                gen: current.clone(),
                pos: current.len.load(Ordering::Acquire),
                resumed: true,
            };
        };
        let wanted = match epoch {
            None => Some(current),
            Some(e) => gens.iter().find(|g| g.epoch == e),
        };
        match wanted {
            Some(gen) => {
                let len = gen.len.load(Ordering::Acquire);
                StartPoint {
                    gen: gen.clone(),
                    pos: from.min(len),
                    resumed: from <= len,
                }
            }
            None => StartPoint {
                gen: gens.front().expect("non-empty").clone(),
                pos: 0,
                resumed: false,
            },
        }
    }

    /// The generation after `gen`; the oldest one kept when `gen` has
    /// already been rotated away (a reader that fell a whole spool behind).
    pub fn next_after(&self, gen: &Arc<Gen>) -> Option<Arc<Gen>> {
        let gens = self.lock();
        match gens.iter().position(|g| Arc::ptr_eq(g, gen)) {
            Some(i) => gens.get(i + 1).cloned(),
            None => gens.front().cloned(),
        }
    }

    /// Appends one complete line (ending in `\n`), rotating first when it
    /// would take the current file past the limit. Only the writer calls it.
    pub fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut current = self.current();
        let len = current.len.load(Ordering::Acquire);
        if len > 0 && len + line.len() as u64 > self.max_bytes {
            current = self.rotate(current)?;
        }
        (&current.file).write_all(line)?;
        current.len.fetch_add(line.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    fn rotate(&self, old: Arc<Gen>) -> io::Result<Arc<Gen>> {
        std::fs::rename(&self.path, &self.old_path)?;
        let new = Arc::new(Gen::new(open_append(&self.path)?)?);
        {
            let mut gens = self.lock();
            gens.push_back(new.clone());
            // Keep what is on disk: this file and the one just renamed.
            while gens.len() > 2 {
                gens.pop_front();
            }
        }
        // Sealed only after the new generation is findable, so a reader
        // that sees `sealed` always finds where to go next.
        old.sealed.store(true, Ordering::Release);
        log::debug!("spool {} rotated", self.path.display());
        Ok(new)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Gen>>> {
        self.gens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Spool {
    /// A client is "seen" (for `--spool-retention`) until its stream ends,
    /// also when the stream wrote nothing lately.
    fn drop(&mut self) {
        let _ = self
            .current()
            .file
            .set_modified(std::time::SystemTime::now());
    }
}

impl Gen {
    fn new(file: File) -> io::Result<Gen> {
        let meta = file.metadata()?;
        Ok(Gen {
            epoch: epoch_of(&meta),
            len: AtomicU64::new(meta.len()),
            file,
            sealed: AtomicBool::new(false),
        })
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn read(gen: &Gen) -> String {
        let mut buf = vec![0; gen.len.load(Ordering::Acquire) as usize];
        gen.file.read_exact_at(&mut buf, 0).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn rotation_keeps_one_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a", 1024).unwrap();
        let line = format!("{}\n", "x".repeat(99));
        let first = spool.current();
        for _ in 0..11 {
            spool.append(line.as_bytes()).unwrap();
        }
        assert!(first.sealed.load(Ordering::Acquire));
        assert_eq!(first.len.load(Ordering::Acquire), 1000);
        let second = spool.next_after(&first).unwrap();
        assert_ne!(second.epoch, first.epoch);
        assert_eq!(read(&second), line);
        assert!(dir.path().join("a.spool.1").exists());
        // A resume in the previous generation is honoured...
        let p = spool.start_point(Some(500), Some(&first.epoch));
        assert!(p.resumed && p.pos == 500 && Arc::ptr_eq(&p.gen, &first));
        // ...one two rotations back is not.
        for _ in 0..10 {
            spool.append(line.as_bytes()).unwrap();
        }
        let p = spool.start_point(Some(500), Some(&first.epoch));
        assert!(!p.resumed && p.pos == 0 && Arc::ptr_eq(&p.gen, &second));
    }

    #[test]
    fn reopening_keeps_what_was_spooled() {
        let dir = tempfile::tempdir().unwrap();
        let epoch = {
            let spool = Spool::open(dir.path(), "b", 1 << 20).unwrap();
            spool.append(b"one\n").unwrap();
            spool.current().epoch.clone()
        };
        let spool = Spool::open(dir.path(), "b", 1 << 20).unwrap();
        assert_eq!(spool.current().epoch, epoch);
        let p = spool.start_point(None, None);
        assert_eq!(p.pos, 4);
        let p = spool.start_point(Some(0), Some(&epoch));
        assert_eq!((p.pos, p.resumed), (0, true));
    }
}
