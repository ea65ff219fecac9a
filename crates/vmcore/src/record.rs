//! One kernel log record, the same shape whichever log format it came from.

/// Record flags as the 3.5–5.9 `struct printk_log` stores them.
pub const LOG_NEWLINE: u8 = 2;
pub const LOG_CONT: u8 = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (ring buffer: from the record; older formats: counted
    /// from the oldest record still in the buffer).
    pub seq: u64,
    pub ts_nsec: u64,
    pub level: u8,
    pub facility: u8,
    pub flags: u8,
    /// `T<pid>` or `C<cpu>` source of the message when the kernel stored one.
    pub caller_id: Option<u32>,
    /// Raw bytes as the kernel stored them: not necessarily UTF-8.
    pub text: Vec<u8>,
    /// Device info / dictionary (`SUBSYSTEM=`, `DEVICE=` ...).
    pub dict: Vec<(String, String)>,
}

impl Record {
    /// The caller id as dmesg shows it: `T123` for a task, `C1` for a CPU.
    pub fn caller(&self) -> Option<String> {
        let id = self.caller_id?;
        if id == 0 {
            return None;
        }
        Some(if id & 0x8000_0000 != 0 {
            format!("C{}", id & 0x7fff_ffff)
        } else {
            format!("T{id}")
        })
    }
}

/// Splits a dictionary blob (`KEY=value\0KEY=value`) into pairs.
pub fn parse_dict(blob: &[u8]) -> Vec<(String, String)> {
    blob.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}
