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

/// The addresses both lists allow, as blocks (an empty list allows all).
/// Two blocks overlap only when one contains the other, so the result is
/// the narrower block of each overlapping pair; `None` when nothing is left.
pub fn intersect(a: &[String], b: &[String]) -> Result<Option<Vec<String>>, LogicalError> {
    if a.is_empty() {
        return Ok(Some(b.to_vec()));
    }
    if b.is_empty() {
        return Ok(Some(a.to_vec()));
    }
    let (na, nb) = (parse_all(a)?, parse_all(b)?);
    let mut out: Vec<IpNet> = Vec::new();
    for x in &na {
        for y in &nb {
            let narrower = if x.contains(y) {
                *y
            } else if y.contains(x) {
                *x
            } else {
                continue;
            };
            if !out.contains(&narrower) {
                out.push(narrower);
            }
        }
    }
    Ok((!out.is_empty()).then(|| out.iter().map(IpNet::to_string).collect()))
}

/// Whether every block of `inner` lies inside a block of `outer` (an empty
/// `outer` contains everything; an empty `inner` is everything).
pub fn subset(inner: &[String], outer: &[String]) -> Result<bool, LogicalError> {
    if outer.is_empty() {
        return Ok(true);
    }
    if inner.is_empty() {
        return Ok(false);
    }
    let (ni, no) = (parse_all(inner)?, parse_all(outer)?);
    Ok(ni.iter().all(|i| no.iter().any(|o| o.contains(i))))
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

    #[test]
    fn intersections_and_subsets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let parent = s(&["10.0.0.0/8", "192.168.1.0/24"]);
        assert_eq!(
            intersect(&parent, &s(&["10.1.0.0/16", "172.16.0.0/12"])).unwrap(),
            Some(s(&["10.1.0.0/16"]))
        );
        assert_eq!(
            intersect(&parent, &s(&["0.0.0.0/0"])).unwrap(),
            Some(parent.clone())
        );
        assert_eq!(intersect(&parent, &s(&["172.16.0.0/12"])).unwrap(), None);
        assert_eq!(intersect(&[], &parent).unwrap(), Some(parent.clone()));
        assert!(subset(&s(&["10.1.2.3"]), &parent).unwrap());
        assert!(!subset(&s(&["0.0.0.0/0"]), &parent).unwrap());
        assert!(!subset(&[], &parent).unwrap());
        assert!(subset(&[], &[]).unwrap());
    }
}
