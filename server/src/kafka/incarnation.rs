//! A restarted node's consumer takes its partitions back at once instead of
//! after its previous incarnation's session timeout.
//!
//! After a `kill -9`, the dead consumer stays a member of its group, with
//! its partitions, until the broker has not heard from it for
//! `session.timeout.ms`; a new consumer of the same node joins as another
//! member and, in tansu 0.6, cannot even become the group's leader while the
//! dead one is there. So each consumer writes its member id to the data
//! folder (`DATA_DIR/kafka/`, one file per flow, trigger and group) once the
//! group has given it one, and the next consumer of the same trigger on the
//! same data folder first removes that member from the group (LeaveGroup on
//! its behalf), then joins: the group rebalances among live members at once.
//!
//! librdkafka has no call that leaves a group for another member id, so the
//! two requests this takes (FindCoordinator v2, LeaveGroup v3) are written
//! here over a plain TCP connection: only when the consumer's
//! `security.protocol` is `plaintext` (the default). With TLS or SASL, or a
//! static member (`group.instance.id`), nothing is sent and the takeover
//! after a restart waits for the session timeout.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long each connection, request and answer may take.
const TIMEOUT: Duration = Duration::from_secs(2);

const FIND_COORDINATOR: i16 = 10;
const LEAVE_GROUP: i16 = 13;

/// The file that keeps the member id of the consumer of one trigger and
/// group on this data folder.
pub fn path(data_dir: &Path, fields: &[&str]) -> PathBuf {
    // FNV-1a over the length-prefixed fields: stable across builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for field in fields {
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        for byte in len.to_le_bytes().iter().chain(field.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    crate::data::kafka_members(data_dir).join(format!("{hash:016x}.member"))
}

/// The member id the previous consumer wrote, if any.
pub fn read(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Keeps `member_id` for the next consumer (written aside, then renamed:
/// a crash leaves the old id or the new one).
pub fn write(path: &Path, member_id: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let aside = path.with_extension("member.new");
    std::fs::write(&aside, member_id)?;
    std::fs::rename(&aside, path)
}

/// Whether these settings let [`leave`] talk to the brokers: plain TCP, a
/// dynamic member.
pub fn can_leave(config: &[(String, String)]) -> bool {
    let get = |key| super::consumer::setting(config, key);
    let plaintext = get("security.protocol").is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
    let dynamic = get("group.instance.id").is_none_or(str::is_empty);
    plaintext && dynamic
}

/// Removes `member_id` from `group`: asks each of `bootstrap` (librdkafka's
/// `bootstrap.servers`) in turn for the group's coordinator, and sends it a
/// LeaveGroup for that member. `Ok(true)` when the member was removed,
/// `Ok(false)` when the group did not know it (any more).
pub fn leave(bootstrap: &str, client_id: &str, group: &str, member_id: &str) -> io::Result<bool> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no bootstrap server");
    for server in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let server = server
            .split_once("://")
            .map_or(server, |(_, address)| address);
        match coordinator(server, client_id, group)
            .and_then(|at| leave_at(&at, client_id, group, member_id))
        {
            Ok(removed) => return Ok(removed),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn coordinator(server: &str, client_id: &str, group: &str) -> io::Result<String> {
    let mut body = Vec::new();
    put_string(&mut body, group);
    body.push(0); // key type: a group
    let answer = call(server, FIND_COORDINATOR, 2, client_id, &body)?;
    let mut r = Reader(&answer);
    let _throttle = r.i32()?;
    let error = r.i16()?;
    let message = r.nullable_string()?;
    let _node = r.i32()?;
    let host = r.string()?;
    let port = r.i32()?;
    if error != 0 {
        return Err(io::Error::other(format!(
            "FindCoordinator: error {error} {}",
            message.unwrap_or_default()
        )));
    }
    Ok(format!("{host}:{port}"))
}

fn leave_at(at: &str, client_id: &str, group: &str, member_id: &str) -> io::Result<bool> {
    let mut body = Vec::new();
    put_string(&mut body, group);
    body.extend_from_slice(&1i32.to_be_bytes()); // one member
    put_string(&mut body, member_id);
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no group instance id
    let answer = call(at, LEAVE_GROUP, 3, client_id, &body)?;
    let mut r = Reader(&answer);
    let _throttle = r.i32()?;
    let error = r.i16()?;
    let members = r.i32()?;
    let mut removed = false;
    for _ in 0..members.max(0) {
        let _member = r.string()?;
        let _instance = r.nullable_string()?;
        // 0: removed; 25 (UNKNOWN_MEMBER_ID): gone already.
        match r.i16()? {
            0 => removed = true,
            25 => {}
            code => return Err(io::Error::other(format!("LeaveGroup: member error {code}"))),
        }
    }
    // 25 here too: the whole group is unknown, which leaves nothing to do.
    if error != 0 && error != 25 {
        return Err(io::Error::other(format!("LeaveGroup: error {error}")));
    }
    Ok(removed)
}

/// One request (header v1) on a connection of its own; the response's body
/// after its correlation id.
fn call(
    server: &str,
    api_key: i16,
    version: i16,
    client_id: &str,
    body: &[u8],
) -> io::Result<Vec<u8>> {
    let address = server
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address: {server}")))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    const CORRELATION: i32 = 1;
    let mut request = Vec::with_capacity(body.len() + 32);
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&CORRELATION.to_be_bytes());
    put_string(&mut request, client_id);
    request.extend_from_slice(body);
    let size = i32::try_from(request.len()).map_err(io::Error::other)?;
    stream.write_all(&size.to_be_bytes())?;
    stream.write_all(&request)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|&n| (4..=1 << 20).contains(&n))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad response size"))?;
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response)?;
    let mut r = Reader(&response);
    if r.i32()? != CORRELATION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "response to another request",
        ));
    }
    Ok(r.0.to_vec())
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len.unsigned_abs() as usize]);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short response",
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn i16(&mut self) -> io::Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> io::Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn nullable_string(&mut self) -> io::Result<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len.unsigned_abs() as usize)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    fn string(&mut self) -> io::Result<String> {
        Ok(self.nullable_string()?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_and_group_has_its_own_file() {
        let dir = Path::new("/d");
        let a = path(dir, &["ns", "f", "t", "g"]);
        assert_eq!(a, path(dir, &["ns", "f", "t", "g"]));
        assert_ne!(a, path(dir, &["ns", "f", "t", "g2"]));
        assert_ne!(a, path(dir, &["ns", "f", "tg", ""]));
        assert!(a.starts_with("/d/kafka"));
    }

    #[test]
    fn only_plaintext_dynamic_members_leave() {
        let config = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(can_leave(&config(&[])));
        assert!(can_leave(&config(&[("security.protocol", "PLAINTEXT")])));
        assert!(!can_leave(&config(&[("security.protocol", "SASL_SSL")])));
        assert!(!can_leave(&config(&[("group.instance.id", "node-1")])));
    }

    #[test]
    fn the_member_id_survives_in_its_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = path(dir.path(), &["a"]);
        assert_eq!(read(&file), None);
        write(&file, "rdkafka-1234").unwrap_or_else(|e| panic!("{e}"));
        write(&file, "rdkafka-5678").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&file).as_deref(), Some("rdkafka-5678"));
    }
}
