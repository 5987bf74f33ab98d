//! The log engine on its own: replay after reopen, truncation, purge and segment deletion, a
//! torn tail, corruption in the middle.

use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::type_config::TypeConfigExt;

use super::*;
use crate::types::Command;

fn entry(term: u64, index: u64, bytes: usize) -> Entry {
    let log_id = openraft::testing::log_id::<TypeConfig>(term, 1, index);
    Entry::new_normal(
        log_id,
        Command::Put(bytes::Bytes::from(vec![index as u8; bytes])),
    )
}

/// Appends and waits until the fsync thread reports them durable.
async fn append(log: &LogEngine, shard: u32, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    let cb = IOFlushed::<TypeConfig>::signal(tx);
    log.append(shard, entries, cb).unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("fsync in time")
        .expect("callback completed")
        .expect("fsync ok");
}

/// `(term, index)` of every entry of `shard`, checked against the log id written.
fn indexes(log: &LogEngine, shard: u32) -> Vec<(u64, u64)> {
    log.entries(shard, ..)
        .unwrap()
        .iter()
        .map(|e| {
            let index = e.index();
            let term = (1..=3)
                .find(|t| e.log_id() == openraft::testing::log_id::<TypeConfig>(*t, 1, index))
                .expect("a term of this test");
            (term, index)
        })
        .collect()
}

#[tokio::test]
async fn entries_survive_reopen_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    append(&log, 0, (1..=5).map(|i| entry(1, i, 100)).collect()).await;
    append(&log, 7, (1..=3).map(|i| entry(2, i, 10)).collect()).await;
    assert_eq!(log.entries(0, 2..4).unwrap().len(), 2);
    drop(log);

    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(
        indexes(&log, 0),
        (1..=5).map(|i| (1, i)).collect::<Vec<_>>()
    );
    assert_eq!(
        indexes(&log, 7),
        (1..=3).map(|i| (2, i)).collect::<Vec<_>>()
    );
    assert_eq!(log.last_log_id(7).map(|l| l.index()), Some(3));
    // Entries read back from the file equal what was appended.
    assert_eq!(log.entries(0, 3..=3).unwrap(), vec![entry(1, 3, 100)]);
    assert!(log.last_log_id(1).is_none());
}

#[tokio::test]
async fn truncation_and_overwrite_are_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    append(&log, 0, (1..=6).map(|i| entry(1, i, 50)).collect()).await;
    log.truncate(0, 4).unwrap();
    // An append at an index that exists replaces it and everything after it.
    append(&log, 0, vec![entry(2, 4, 50)]).await;
    append(&log, 0, vec![entry(3, 3, 50)]).await;
    let want = vec![(1, 1), (1, 2), (3, 3)];
    assert_eq!(indexes(&log, 0), want);
    drop(log);
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0), want);
}

#[tokio::test]
async fn purge_deletes_old_segments_once_every_shard_is_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    // Each 9 MiB batch of shard 0 fills most of a segment; shard 1 writes one entry first.
    append(&log, 1, vec![entry(1, 1, 10)]).await;
    let big = (SEGMENT_BYTES / 8) as usize;
    for i in 1..=20 {
        append(&log, 0, vec![entry(1, i, big)]).await;
    }
    let before = log.segment_count();
    assert!(before >= 3, "{before} segments");
    log.purge(0, 18).unwrap();
    // Shard 1 still needs the first segment.
    assert_eq!(log.segment_count(), before);
    log.purge(1, 1).unwrap();
    let after = log.segment_count();
    assert!(after < before && after >= 1, "{before} -> {after}");
    assert_eq!(
        indexes(&log, 0),
        vec![(1, 19), (1, 20)],
        "purged entries are gone"
    );
    drop(log);
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0), vec![(1, 19), (1, 20)]);
    assert!(indexes(&log, 1).is_empty());
    // Reads of entries not cached any more come from the files.
    assert_eq!(log.entries(0, 20..).unwrap(), vec![entry(1, 20, big)]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    append(&log, 0, (1..=3).map(|i| entry(1, i, 1000)).collect()).await;
    drop(log);
    let path = segment_path(dir.path(), 1);
    // A crash in the middle of the last record's write: its last bytes never reached the
    // disk (the preallocated file reads zeros there).
    let mut data = std::fs::read(&path).unwrap();
    let end = written_len(&data);
    data[end - 10..end].fill(0);
    std::fs::write(&path, &data).unwrap();

    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0), vec![(1, 1), (1, 2)]);
    append(&log, 0, vec![entry(2, 3, 10)]).await;
    drop(log);
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0), vec![(1, 1), (1, 2), (2, 3)]);
}

/// Where the records of a segment end: the first header of length 0 (the zeros of a
/// preallocated file) or the end of the data.
fn written_len(data: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(len) = u32_at(data, pos).filter(|len| *len > 0) {
        pos += 8 + len as usize;
    }
    pos
}

/// The active segment is allocated whole when it starts (an append's `fdatasync` then
/// changes no file size); replay takes its zero tail for room, not for a torn record, and
/// keeps the allocation; a closed segment is cut to what was written.
#[tokio::test]
async fn segments_are_preallocated_and_their_zero_tail_is_room_for_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    append(&log, 0, (1..=3).map(|i| entry(1, i, 100)).collect()).await;
    let first = segment_path(dir.path(), 1);
    assert_eq!(std::fs::metadata(&first).unwrap().len(), SEGMENT_BYTES);
    drop(log);

    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0), vec![(1, 1), (1, 2), (1, 3)]);
    assert_eq!(std::fs::metadata(&first).unwrap().len(), SEGMENT_BYTES);
    // Appends after the reopen land right after the replayed records.
    append(&log, 0, vec![entry(1, 4, 100)]).await;
    // Filling the segment closes it at its written length and preallocates the next one.
    append(&log, 0, vec![entry(1, 5, SEGMENT_BYTES as usize)]).await;
    append(&log, 0, vec![entry(1, 6, 100)]).await;
    assert_eq!(log.segment_count(), 2);
    let closed = std::fs::metadata(&first).unwrap().len();
    assert_eq!(
        closed as usize,
        written_len(&std::fs::read(&first).unwrap())
    );
    let second = segment_path(dir.path(), 2);
    assert_eq!(std::fs::metadata(&second).unwrap().len(), SEGMENT_BYTES);
    drop(log);

    let log = LogEngine::open(dir.path()).unwrap();
    let want: Vec<(u64, u64)> = (1..=6).map(|i| (1, i)).collect();
    assert_eq!(indexes(&log, 0), want);
    assert_eq!(log.entries(0, 6..).unwrap(), vec![entry(1, 6, 100)]);
}

#[tokio::test]
async fn corruption_before_the_tail_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    let big = (SEGMENT_BYTES / 2) as usize;
    for i in 1..=4 {
        append(&log, 0, vec![entry(1, i, big)]).await;
    }
    assert!(log.segment_count() >= 2);
    drop(log);
    // Flip a byte inside the first segment's first record.
    let path = segment_path(dir.path(), 1);
    let mut data = std::fs::read(&path).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&path, data).unwrap();
    let err = LogEngine::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[tokio::test]
async fn the_cache_stays_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    let size = 1 << 20;
    for i in 1..=80 {
        append(&log, 0, vec![entry(1, i, size)]).await;
    }
    let cached = log.inner.lock().shards[&0].cached_bytes;
    assert!(cached <= CACHE_BYTES_PER_SHARD, "{cached} bytes cached");
    assert!(cached > 0);
    // Old (evicted) and new (cached) entries read back alike.
    let all = log.entries(0, ..).unwrap();
    assert_eq!(all.len(), 80);
    assert_eq!(all[0], entry(1, 1, size));
    assert_eq!(all[79], entry(1, 80, size));
    // A new leader's entries replace the tail from an index long evicted: they are cached,
    // and evicted again in their turn.
    append(&log, 0, vec![entry(2, 3, size)]).await;
    for i in 4..=40 {
        append(&log, 0, vec![entry(2, i, size)]).await;
    }
    let cached = log.inner.lock().shards[&0].cached_bytes;
    assert!(cached <= CACHE_BYTES_PER_SHARD, "{cached} bytes cached");
    let all = log.entries(0, ..).unwrap();
    assert_eq!(all.len(), 40);
    assert_eq!(all[2], entry(2, 3, size));
    assert_eq!(all[39], entry(2, 40, size));
}

#[tokio::test]
async fn a_quiet_shard_does_not_pin_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    // Shard 1 writes twice and never purges; shard 0 writes a lot and purges behind itself.
    append(&log, 1, vec![entry(1, 1, 10), entry(1, 2, 20)]).await;
    let big = (SEGMENT_BYTES / 4) as usize;
    for i in 1..=(4 * (MAX_SEGMENTS as u64 + 4)) {
        append(&log, 0, vec![entry(1, i, big)]).await;
        log.purge(0, i - 1).unwrap();
    }
    let n = log.segment_count();
    assert!(n <= MAX_SEGMENTS + 1, "{n} segments");
    drop(log);
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 1), vec![(1, 1), (1, 2)]);
    assert_eq!(
        log.entries(1, ..).unwrap(),
        vec![entry(1, 1, 10), entry(1, 2, 20)]
    );
    assert_eq!(indexes(&log, 0).len(), 1);
}

#[tokio::test]
async fn recycled_segments_never_replay_their_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogEngine::open(dir.path()).unwrap();
    let fill = SEGMENT_BYTES as usize;
    // Life 1 of segment 1: six small records, then one that fills the segment.
    append(&log, 0, (1..=6).map(|i| entry(1, i, 10)).collect()).await;
    append(&log, 0, vec![entry(1, 7, fill)]).await;
    append(&log, 0, vec![entry(1, 8, 10)]).await;
    assert_eq!(log.segment_count(), 2);
    // Segment 1 is no longer needed: it is kept for recycling.
    log.purge(0, 7).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(recycle_path(dir.path(), 1).exists());
    // Fill segment 2; the next append starts segment 3 in segment 1's file, and its three
    // records (the same size as the old ones) end exactly where old records 4..=6 begin.
    append(&log, 0, vec![entry(1, 9, fill)]).await;
    append(&log, 0, (10..=12).map(|i| entry(1, i, 10)).collect()).await;
    assert!(
        !recycle_path(dir.path(), 1).exists(),
        "segment 3 took the file"
    );
    let data = std::fs::read(segment_path(dir.path(), 3)).unwrap();
    let rec = 8 + u32_at(&data, 0).unwrap() as usize;
    assert_eq!(
        u32_at(&data, 3 * rec),
        u32_at(&data, 0),
        "an old, well-formed record follows the new ones"
    );
    let want: Vec<(u64, u64)> = (8..=12).map(|i| (1, i)).collect();
    assert_eq!(indexes(&log, 0), want);
    drop(log);

    // Replayed, old record 4 would truncate the log at index 4 and bring back 4..=6.
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0), want);
    assert_eq!(log.entries(0, 12..).unwrap(), vec![entry(1, 12, 10)]);
    // Appends continue after the new records, over the old ones.
    append(&log, 0, vec![entry(1, 13, 10)]).await;
    drop(log);
    let log = LogEngine::open(dir.path()).unwrap();
    assert_eq!(indexes(&log, 0).last(), Some(&(1, 13)));
    assert_eq!(indexes(&log, 0).len(), 6);
}
