//! The VMCOREINFO note: `KEY=VALUE` lines the crashing kernel leaves for
//! dump readers. It is the only source of symbol addresses and structure
//! layouts we use, so the parsing is strict about numbers (a wrong offset read
//! as zero would silently decode garbage) and lenient about unknown keys.

use crate::error::{Error, Result};

/// VMCOREINFO is a page or two; anything larger is not VMCOREINFO.
pub const MAX_VMCOREINFO: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct VmcoreInfo {
    /// Every line, in note order, for `vmcore info`.
    pub entries: Vec<(String, String)>,
}

impl VmcoreInfo {
    pub fn parse(text: &[u8]) -> Result<Self> {
        if text.len() > MAX_VMCOREINFO {
            return Err(Error::TooBig {
                what: "VMCOREINFO note",
                value: text.len() as u64,
                limit: MAX_VMCOREINFO as u64,
            });
        }
        let text = text.split(|&b| b == 0).next().unwrap_or_default();
        let mut entries = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let line = line.trim();
            if let Some((k, v)) = line.split_once('=') {
                entries.push((k.to_string(), v.to_string()));
            }
        }
        if entries.is_empty() {
            return Err(Error::NoVmcoreinfo);
        }
        Ok(VmcoreInfo { entries })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        // The last occurrence wins, as in the kernel's append-only note.
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| Error::MissingKey(key.to_string()))
    }

    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    pub fn page_size(&self) -> Option<u64> {
        self.get("PAGESIZE").and_then(|v| v.parse().ok())
    }

    /// Seconds since the epoch when the kernel crashed (CRASHTIME).
    pub fn crash_time(&self) -> Option<u64> {
        self.get("CRASHTIME").and_then(|v| v.parse().ok())
    }

    /// KASLR displacement of the kernel image (hex without 0x).
    pub fn kernel_offset(&self) -> Option<u64> {
        self.get("KERNELOFFSET").and_then(|v| parse_hex(v).ok())
    }

    /// `SYMBOL(name)`: hex, already KASLR-relocated.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let key = format!("SYMBOL({name})");
        self.get(&key).and_then(|v| parse_hex(v).ok())
    }

    pub fn require_symbol(&self, name: &str) -> Result<u64> {
        let key = format!("SYMBOL({name})");
        let v = self.require(&key)?;
        parse_hex(v).map_err(|_| Error::BadValue {
            key,
            value: v.into(),
        })
    }

    fn decimal(&self, key: String) -> Result<Option<u64>> {
        match self.get(&key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| Error::BadValue {
                key,
                value: v.into(),
            }),
        }
    }

    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        self.decimal(format!("SIZE({name})"))
    }

    pub fn offset(&self, field: &str) -> Result<Option<u64>> {
        self.decimal(format!("OFFSET({field})"))
    }

    pub fn length(&self, name: &str) -> Result<Option<u64>> {
        self.decimal(format!("LENGTH({name})"))
    }

    pub fn require_size(&self, name: &str) -> Result<u64> {
        self.size(name)?
            .ok_or_else(|| Error::MissingKey(format!("SIZE({name})")))
    }

    pub fn require_offset(&self, field: &str) -> Result<u64> {
        self.offset(field)?
            .ok_or_else(|| Error::MissingKey(format!("OFFSET({field})")))
    }

    /// `NUMBER(name)`: decimal and possibly negative on x86 (phys_base), hex
    /// with 0x on arm64 (kimage_voffset, PHYS_OFFSET).
    pub fn number(&self, name: &str) -> Result<Option<i64>> {
        let key = format!("NUMBER({name})");
        match self.get(&key) {
            None => Ok(None),
            Some(v) => parse_number(v).map(Some).map_err(|_| Error::BadValue {
                key,
                value: v.into(),
            }),
        }
    }
}

pub fn parse_hex(v: &str) -> std::result::Result<u64, std::num::ParseIntError> {
    let v = v.trim();
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u64::from_str_radix(v, 16)
}

fn parse_number(v: &str) -> std::result::Result<i64, std::num::ParseIntError> {
    let v = v.trim();
    if v.starts_with("0x") || v.starts_with("0X") {
        return parse_hex(v).map(|u| u as i64);
    }
    v.parse::<i64>().or_else(|e| {
        // Large unsigned decimals (e.g. sme_mask) still fit as bit patterns.
        v.parse::<u64>().map(|u| u as i64).map_err(|_| e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_numbers() {
        let n = b"OSRELEASE=6.1.0\nPAGESIZE=4096\nSYMBOL(prb)=ffffffff912622c0\nNUMBER(phys_base)=-186646528\nOFFSET(printk_info.seq)=0\nKERNELOFFSET=e800000\nNUMBER(kimage_voffset)=0xffff800008000000\nCRASHTIME=1700000000";
        let v = VmcoreInfo::parse(n).unwrap();
        assert_eq!(v.osrelease(), Some("6.1.0"));
        assert_eq!(v.page_size(), Some(4096));
        assert_eq!(v.symbol("prb"), Some(0xffffffff912622c0));
        assert_eq!(v.number("phys_base").unwrap(), Some(-186646528));
        assert_eq!(v.offset("printk_info.seq").unwrap(), Some(0));
        assert_eq!(v.kernel_offset(), Some(0xe800000));
        assert_eq!(
            v.number("kimage_voffset").unwrap(),
            Some(0xffff800008000000u64 as i64)
        );
        assert_eq!(v.crash_time(), Some(1700000000));
        assert!(matches!(
            v.require_symbol("log_buf"),
            Err(Error::MissingKey(_))
        ));
    }

    #[test]
    fn rejects_garbage_numbers() {
        let v = VmcoreInfo::parse(b"OFFSET(a.b)=zz\nSYMBOL(x)=nothex").unwrap();
        assert!(matches!(v.offset("a.b"), Err(Error::BadValue { .. })));
        assert!(v.require_symbol("x").is_err());
        assert!(VmcoreInfo::parse(b"no equals here").is_err());
    }
}
