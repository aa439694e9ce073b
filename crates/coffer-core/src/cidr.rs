//! CIDR bounds on credentials.

use crate::logical::LogicalError;
use ipnet::IpNet;
use std::net::SocketAddr;

/// Parses CIDR blocks (a bare address counts as /32 or /128).
pub fn parse_all(list: &[String]) -> Result<Vec<IpNet>, LogicalError> {
    list.iter()
        .map(|c| {
            let c = c.trim();
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| LogicalError::BadRequest(format!("invalid CIDR block {c:?}")))
        })
        .collect()
}

/// Whether `remote` falls in one of `blocks`; empty blocks allow all.
pub fn allows(blocks: &[String], remote: Option<SocketAddr>) -> Result<bool, LogicalError> {
    if blocks.is_empty() {
        return Ok(true);
    }
    let nets = parse_all(blocks)?;
    let Some(remote) = remote else {
        return Ok(false);
    };
    Ok(nets.iter().any(|n| n.contains(&remote.ip())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_bounds() {
        let b = vec!["127.0.0.0/8".to_string(), "10.1.2.3".to_string()];
        assert!(allows(&b, Some(addr("127.0.0.1:5000"))).unwrap());
        assert!(allows(&b, Some(addr("10.1.2.3:1"))).unwrap());
        assert!(!allows(&b, Some(addr("192.168.1.1:1"))).unwrap());
        assert!(!allows(&b, None).unwrap());
        assert!(allows(&[], None).unwrap());
        assert!(parse_all(&["nope".into()]).is_err());
    }
}
