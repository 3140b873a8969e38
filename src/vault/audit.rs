//! The audit log: every state change and every denial, as a hash chain of sealed records.
//!
//! Record `n` is the object `audit/<n>`: `seal(postcard(AuditRecord), aad = "vaultfs audit
//! record" ‖ vault id ‖ n)`, holding blake3 of record `n-1`'s sealed bytes. The seal makes an
//! edited record, or one moved to another place (a swap), fail to open; the chain makes a
//! replaced one stand out; the head (newest `n` and its hash) lives in the catalog's `state`
//! tree beside the config generation, so a removed last record (truncation) is found too.
//! Appending puts the record, then moves the head, then flushes the index database: a crash
//! in between leaves one record past the head, which verification reports as a warning and
//! the next append overwrites.

use crate::format::{self, AuditOutcome, AuditRecord};
use crate::identity::Actor;
use crate::store::StoreError;
use crate::store::backend::Key;

use super::{Result, Vault, now_ns};

const AUDIT_AAD: &[u8] = b"vaultfs audit record";

/// What one operation was, for its audit record.
#[derive(Debug, Clone, Default)]
pub struct What {
    pub op: String,
    pub item: Option<String>,
    pub params: String,
}

impl What {
    pub fn new(op: impl Into<String>, item: Option<&str>, params: impl Into<String>) -> What {
        What {
            op: op.into(),
            item: item.map(str::to_string),
            params: params.into(),
        }
    }
}

/// The log as read back: every record that opened, in order, and what is wrong with it.
#[derive(Debug, Default)]
pub struct Log {
    pub records: Vec<AuditRecord>,
    /// Tampering: a record removed, edited, swapped, replaced or cut off.
    pub problems: Vec<String>,
    /// Not tampering: a record past the head (an append cut short), no head known.
    pub warnings: Vec<String>,
}

fn hash(sealed: &[u8]) -> [u8; 32] {
    *blake3::hash(sealed).as_bytes()
}

impl Vault {
    fn audit_aad(&self, seq: u64) -> Vec<u8> {
        let mut a = AUDIT_AAD.to_vec();
        a.extend_from_slice(self.vault_id.as_bytes());
        a.extend_from_slice(&seq.to_le_bytes());
        a
    }

    /// The sealed bytes of record `seq`, `None` if there is none.
    fn audit_object(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        match self.store.backend().get(Key::Audit(seq)) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::Missing(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Append a record: `who` did `what` with `outcome`, now (vault time). Returns its number.
    pub fn audit(&self, who: &Actor, what: &What, outcome: AuditOutcome) -> Result<u64> {
        let _g = self.audit_lock.lock().expect("audit lock");
        let codec = self.store.codec();
        let (last, prev) = match self.catalog.audit_head(codec)? {
            Some(h) => h,
            // A vault from before the log, or an index rebuilt by `repair`: continue after the
            // last record that is there.
            None => self.audit_tail()?,
        };
        let rec = AuditRecord {
            seq: last + 1,
            prev,
            time_ns: now_ns(),
            uid: who.uid,
            user: who.name.clone(),
            op: what.op.clone(),
            item: what.item.clone(),
            params: what.params.clone(),
            outcome,
        };
        let sealed = codec.seal_raw(&format::encode(&rec), &self.audit_aad(rec.seq))?;
        self.store.backend().put(Key::Audit(rec.seq), &sealed)?;
        self.catalog
            .set_audit_head(codec, (rec.seq, hash(&sealed)))?;
        self.store.db().flush()?;
        Ok(rec.seq)
    }

    /// The last record present counting up from 1, and its hash (`(0, zeros)` if none).
    fn audit_tail(&self) -> Result<(u64, [u8; 32])> {
        let mut tail = (0, [0u8; 32]);
        while let Some(b) = self.audit_object(tail.0 + 1)? {
            tail = (tail.0 + 1, hash(&b));
        }
        Ok(tail)
    }

    /// Read the whole log and verify it: each record opens as its own place in this vault's
    /// log, follows the one before, and the last is the head's.
    pub fn audit_log(&self) -> Result<Log> {
        let codec = self.store.codec();
        let head = self.catalog.audit_head(codec)?;
        let mut log = Log::default();
        let end = head.map(|h| h.0);
        let mut prev: Option<[u8; 32]> = Some([0u8; 32]);
        let mut seq = 1;
        loop {
            let within = end.is_some_and(|e| seq <= e);
            let Some(sealed) = self.audit_object(seq)? else {
                if within {
                    log.problems
                        .push(format!("audit record {seq} is missing (removed)"));
                    prev = None;
                    seq += 1;
                    continue;
                }
                break;
            };
            let opened = codec
                .open_raw(&sealed, &self.audit_aad(seq))
                .ok()
                .and_then(|plain| format::decode::<AuditRecord>(&plain, "audit record").ok());
            let mut hash_of = Some(hash(&sealed));
            match opened {
                None => {
                    log.problems.push(format!(
                        "audit record {seq} does not authenticate (edited, or moved from another \
                         place in the log)"
                    ));
                    // Its successor is judged by what it follows, not by damaged bytes.
                    hash_of = None;
                }
                Some(rec) if rec.seq != seq => log
                    .problems
                    .push(format!("audit record {seq} holds record {}", rec.seq)),
                Some(rec) => {
                    if prev.is_some_and(|p| p != rec.prev) {
                        log.problems.push(format!(
                            "audit record {seq} does not follow record {} (reordered or \
                             replaced)",
                            seq - 1
                        ));
                    }
                    log.records.push(rec);
                }
            }
            prev = hash_of;
            if end == Some(seq) {
                if prev.is_some() && head.is_some_and(|h| Some(h.1) != prev) {
                    log.problems.push(format!(
                        "audit record {seq} is not the record the log's head names (replaced)"
                    ));
                }
                // One more: a record past the head is a cut-short append, told above.
                let next = seq + 1;
                if self.audit_object(next)?.is_some() {
                    log.warnings.push(format!(
                        "audit record {next} is past the log's head (an append cut short); the \
                         next record replaces it"
                    ));
                }
                break;
            }
            seq += 1;
        }
        if head.is_none() && !log.records.is_empty() {
            log.warnings.push(
                "the audit log has no head in the index (an index rebuilt by repair): a cut-off \
                 end cannot be told"
                    .into(),
            );
        }
        Ok(log)
    }
}
