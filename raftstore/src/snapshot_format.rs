//! The byte format of a shard snapshot: every state-machine row of the shard, written straight
//! from a RocksDB iterator into the output buffer and read back row by row into a WriteBatch.
//!
//! ```text
//! "NVSNAP1\n"
//! repeated per column family:  u8 name_len, name, u64 row_count,
//!                              row_count × (u32 key_len, key, u32 value_len, value)
//! ```
//!
//! Integers are little-endian. (The first format was MessagePack of `Vec<(Vec<u8>, Vec<u8>)>`,
//! which encodes every byte as a separate integer: a third of the store's CPU went into it when
//! snapshots of a large shard were built.)

use std::io;

/// The format's first bytes.
const MAGIC: &[u8; 8] = b"NVSNAP1\n";

/// Builds a snapshot buffer one column family at a time.
pub(crate) struct Writer {
    out: Vec<u8>,
    /// Offset of the current column family's row count, and the rows so far.
    open: Option<(usize, u64)>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self {
            out: MAGIC.to_vec(),
            open: None,
        }
    }

    /// Starts the rows of column family `name`.
    pub(crate) fn column_family(&mut self, name: &str) -> io::Result<()> {
        self.close();
        let len = u8::try_from(name.len())
            .map_err(|_| io::Error::other("column family name longer than 255 bytes"))?;
        self.out.push(len);
        self.out.extend_from_slice(name.as_bytes());
        self.open = Some((self.out.len(), 0));
        self.out.extend_from_slice(&0u64.to_le_bytes());
        Ok(())
    }

    /// Appends one row to the current column family.
    pub(crate) fn row(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let Some((_, rows)) = self.open.as_mut() else {
            return Err(io::Error::other("snapshot row before any column family"));
        };
        *rows += 1;
        for part in [key, value] {
            let len = u32::try_from(part.len())
                .map_err(|_| io::Error::other("snapshot row part over 4 GiB"))?;
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(part);
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some((at, rows)) = self.open.take() {
            self.out[at..at + 8].copy_from_slice(&rows.to_le_bytes());
        }
    }

    /// The finished buffer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.close();
        self.out
    }
}

/// Calls `row(column_family, key, value)` for every row of `data`, in order; any truncation
/// or framing error is an `InvalidData` error (nothing is half-read silently).
pub(crate) fn read(
    data: &[u8],
    mut row: impl FnMut(&str, &[u8], &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"));
    let mut rest = data
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("not a Navarch snapshot (bad magic)"))?;
    let mut take = |n: usize, what: &str| -> io::Result<&[u8]> {
        if rest.len() < n {
            return Err(bad(&format!("truncated {what}")));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    loop {
        let Ok(len) = take(1, "") else {
            return Ok(());
        };
        let name_len = len[0] as usize;
        let name = std::str::from_utf8(take(name_len, "column family name")?)
            .map_err(|_| bad("column family name is not UTF-8"))?
            .to_string();
        let rows = u64::from_le_bytes(take(8, "row count")?.try_into().expect("8 bytes"));
        for _ in 0..rows {
            let klen = u32::from_le_bytes(take(4, "key length")?.try_into().expect("4 bytes"));
            let key = take(klen as usize, "key")?;
            let vlen = u32::from_le_bytes(take(4, "value length")?.try_into().expect("4 bytes"));
            let value = take(vlen as usize, "value")?;
            row(&name, key, value)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_damage_is_an_error() {
        let mut w = Writer::new();
        w.column_family("kv").unwrap();
        w.row(b"a", b"1").unwrap();
        w.row(b"b", b"").unwrap();
        w.column_family("empty").unwrap();
        w.column_family("hist").unwrap();
        w.row(b"", &[7u8; 300]).unwrap();
        let data = w.finish();
        let mut got = Vec::new();
        read(&data, |cf, k, v| {
            got.push((cf.to_string(), k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("kv".into(), b"a".to_vec(), b"1".to_vec()),
                ("kv".into(), b"b".to_vec(), vec![]),
                ("hist".into(), vec![], vec![7u8; 300]),
            ]
        );
        // Every truncation point but the column-family boundaries is detected.
        for cut in 1..data.len() {
            let r = read(&data[..cut], |_, _, _| Ok(()));
            if r.is_ok() {
                assert!(cut >= MAGIC.len(), "truncated magic accepted");
            }
        }
        assert!(read(&data[..data.len() - 1], |_, _, _| Ok(())).is_err());
        assert!(read(b"garbage", |_, _, _| Ok(())).is_err());
        assert!(Writer::new().row(b"k", b"v").is_err());
    }
}
