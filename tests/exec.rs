//! `stslib exec` as a process against the local STS emulator: the child's
//! environment, exit statuses and signals, nesting, and the `--server`
//! credential endpoint (protocol, authorization, hostile clients, refresh
//! while the child runs). Unix only: the children are `sh` scripts.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use stslib::emulator::Emulator;

const USER_KEY: &str = "AKIAEXECTESTUSER0001";
const USER_SECRET: &str = "exec/test/secret/AAAAAAAAAAAAAAAAAAAAAAAAA";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const CODE: &str = "314159";

/// A temporary HOME with alice (MFA) and roles `a` (region eu-west-3) and
/// `b`, and a cache directory.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str, extra_config: &str, extra_credentials: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("stslib-exec-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        let config = format!(
            "[profile alice]\nmfa_serial = {SERIAL}\n\
             [profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = alice\n\
             region = eu-west-3\n\
             [profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = alice\n\
             {extra_config}"
        );
        let credentials = format!(
            "[alice]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {USER_SECRET}\n\
             {extra_credentials}"
        );
        std::fs::write(dir.join(".aws/config"), config).unwrap();
        std::fs::write(dir.join(".aws/credentials"), credentials).unwrap();
        Home { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `stslib --endpoint EMU exec ARGS` with a clean environment plus `env`.
    fn command(&self, emu: &Emulator, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stslib"));
        c.args(["--endpoint", &emu.endpoint(), "exec"])
            .args(args)
            .env_clear()
            .env("HOME", &self.dir)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("STSLIB_CACHE_DIR", self.dir.join("cache"));
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, emu: &Emulator, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(emu, args, env)
            .stdin(Stdio::null())
            .output()
            .expect("run stslib")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn emulator() -> Emulator {
    Emulator::builder()
        .user("alice", USER_KEY, USER_SECRET)
        .mfa_device("alice", SERIAL, CODE)
        .require_mfa(true)
        .start()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `NAME=value` lines of an `env` dump.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Waits until `path` has a complete last line (the child wrote it).
fn wait_for_file(path: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("stslib exited early with {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stslib did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(signal: &str, target: &str) {
    let ok = Command::new("kill")
        .args([signal, "--", target])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} {target}");
}

#[test]
fn static_credentials_region_marker_and_clean_environment() {
    let emu = emulator();
    let home = Home::new("static", "", "");
    let dump = home.file("env");
    let script = format!("env > '{}'; exit 7", dump.display());
    // AWS_PROFILE selects the role; it and the stale credentials are not
    // passed on.
    let o = home.run(
        &emu,
        &["--mfa-code", CODE, "--", "sh", "-c", &script],
        &[
            ("AWS_PROFILE", "a"),
            ("AWS_ACCESS_KEY_ID", "AKIASTALE"),
            ("AWS_SECRET_ACCESS_KEY", "stale"),
            ("AWS_DEFAULT_PROFILE", "x"),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds"),
            ("UNRELATED", "kept"),
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let env = env_file(&dump);
    let key = &env["AWS_ACCESS_KEY_ID"];
    assert!(key.starts_with("ASIA"), "{key}");
    assert!(!env["AWS_SECRET_ACCESS_KEY"].is_empty());
    assert!(!env["AWS_SESSION_TOKEN"].is_empty());
    assert!(env["AWS_CREDENTIAL_EXPIRATION"].ends_with('Z'));
    assert_eq!(env["AWS_REGION"], "eu-west-3");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-3");
    assert_eq!(env["STSLIB_EXEC"], "a");
    assert_eq!(env["UNRELATED"], "kept");
    for gone in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        assert!(!env.contains_key(gone), "{gone} passed on");
    }
    // The keys are the role's: GetCallerIdentity with them names role `a`.
    let client = stslib::StsClient::builder()
        .endpoint(emu.endpoint())
        .build()
        .unwrap();
    let who = client
        .get_caller_identity(&stslib::AccessKey {
            access_key_id: key.clone(),
            secret_access_key: stslib::Secret::new(env["AWS_SECRET_ACCESS_KEY"].clone()),
            session_token: Some(stslib::Secret::new(env["AWS_SESSION_TOKEN"].clone())),
        })
        .unwrap();
    assert!(who.arn.contains(":assumed-role/a/"), "{}", who.arn);
    // --region wins over the profile's; `b` has none and gets none.
    let o = home.run(
        &emu,
        &[
            "--region",
            "us-west-2",
            "--profile",
            "a",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(env_file(&dump)["AWS_REGION"], "us-west-2");
    let o = home.run(&emu, &["--profile", "b", "--", "sh", "-c", &script], &[]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let env = env_file(&dump);
    assert!(!env.contains_key("AWS_REGION"));
    assert_eq!(env["STSLIB_EXEC"], "b");
}

#[test]
fn exit_statuses_are_the_childs() {
    let emu = emulator();
    let home = Home::new("status", "", "");
    let run = |args: &[&str]| {
        let mut all = vec!["--profile", "a", "--mfa-code", CODE, "--"];
        all.extend_from_slice(args);
        home.run(&emu, &all, &[])
    };
    assert_eq!(run(&["true"]).status.code(), Some(0));
    assert_eq!(run(&["sh", "-c", "exit 3"]).status.code(), Some(3));
    assert_eq!(run(&["sh", "-c", "exit 255"]).status.code(), Some(255));
    // Killed by a signal: 128 + N, as a shell reports it.
    assert_eq!(run(&["sh", "-c", "kill -TERM $$"]).status.code(), Some(143));
    assert_eq!(run(&["sh", "-c", "kill -KILL $$"]).status.code(), Some(137));
    let o = run(&["stslib-no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    // The child's stdout is stslib's stdout, untouched.
    let o = run(&["printf", "a\\nb"]);
    assert_eq!(o.stdout, b"a\nb");
    // A usage error is stslib's own (2); the child's arguments are its own.
    let o = home.run(&emu, &["--bogus", "--", "true"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["sh", "-c", "exit 4", "--help", "--region", "x"]);
    assert_eq!(o.status.code(), Some(4));
}

#[test]
fn nesting_is_refused_for_another_profile_unless_asked() {
    let emu = emulator();
    let home = Home::new("nesting", "", "");
    let args = ["--profile", "a", "--mfa-code", CODE, "--", "true"];
    let o = home.run(&emu, &args, &[("STSLIB_EXEC", "b")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--nested"), "{}", stderr(&o));
    assert_eq!(emu.requests().len(), 0, "refused before any STS call");
    let o = home.run(&emu, &args, &[("STSLIB_EXEC", "a")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let nested = ["--nested", "--profile", "a", "--", "true"];
    let o = home.run(&emu, &nested, &[("STSLIB_EXEC", "b")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// SIGTERM sent to stslib alone reaches the child, and stslib exits with
/// the child's status after it.
#[test]
fn sigterm_is_passed_on_and_waited_for() {
    let emu = emulator();
    let home = Home::new("sigterm", "", "");
    let ready = home.file("ready");
    let script = format!(
        "trap 'echo got-term > \"{r}.term\"; exit 42' TERM; echo up > '{r}'; \
         while :; do sleep 0.05; done",
        r = ready.display()
    );
    let mut child = home
        .command(
            &emu,
            &[
                "--profile",
                "a",
                "--mfa-code",
                CODE,
                "--",
                "sh",
                "-c",
                &script,
            ],
            &[],
        )
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&ready, &mut child);
    kill("-TERM", &child.id().to_string());
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(42));
    assert!(home.file("ready.term").exists());
}

/// A child shell that counts SIGINTs for a while after the first, then
/// exits 40 + count (99 when none came in 20 s); it writes `ready` once its
/// trap is set. Two copies sent at once may merge into one (a signal
/// pending twice is delivered once), so the tests also read stslib's debug
/// log for whether it passed one on.
fn counting_sigints(ready: &Path) -> String {
    format!(
        "n=0; i=0; trap 'n=$((n+1))' INT; echo up > '{}'; \
         while [ $n -eq 0 ]; do sleep 0.05; i=$((i+1)); [ $i -gt 400 ] && exit 99; done; \
         sleep 0.5; exit $((40 + n))",
        ready.display()
    )
}

const PASSED_ON: &str = "passing SIGINT on to the child";

/// `stslib exec` of `sh -c script` with the debug log on (it says when a
/// signal is passed on).
fn sigint_command(home: &Home, emu: &Emulator, script: &str) -> Command {
    let args = [
        "--profile",
        "a",
        "--mfa-code",
        CODE,
        "--",
        "sh",
        "-c",
        script,
    ];
    home.command(emu, &args, &[("STSLIB_LOG", "debug")])
}

/// Ctrl-C at a real terminal (a pseudo-terminal made by Python's `pty`,
/// stslib its foreground process): the terminal signals the whole
/// foreground process group, so the child gets it once (stslib sends no
/// second copy) and stslib, which must not die of it, exits with the
/// child's status.
#[test]
fn ctrl_c_at_a_terminal_reaches_the_child_once() {
    let emu = emulator();
    let home = Home::new("sigint-tty", "", "");
    let ready = home.file("ready");
    let script = counting_sigints(&ready);
    let stslib = sigint_command(&home, &emu, &script);
    // In the pty's child: exec stslib. In the parent: wait for `ready`,
    // type Ctrl-C, drain the terminal, print the exit code, then what
    // stslib wrote to the terminal.
    let driver = r#"
import os, pty, select, sys, time
ready, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
deadline = time.time() + 20
while not os.path.exists(ready) and time.time() < deadline:
    time.sleep(0.02)
os.write(fd, b"\x03")
said = b""
status = None
while status is None:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            said += os.read(fd, 4096)
        except OSError:
            pass
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        status = st
    elif time.time() > deadline:
        os.kill(pid, 9)
        sys.exit("stslib did not exit")
print(os.waitstatus_to_exitcode(status))
print(said.decode(errors="replace"))
"#;
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(driver)
        .arg(&ready)
        .arg(stslib.get_program())
        .args(stslib.get_args())
        .env_clear();
    for (k, v) in stslib.get_envs() {
        if let Some(v) = v {
            py.env(k, v);
        }
    }
    let out = py.stdin(Stdio::null()).output().expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, said) = text.split_once('\n').unwrap_or((&text, ""));
    assert_eq!(
        code.trim(),
        "41",
        "child saw {code:?} (41: one SIGINT); {said}"
    );
    // The debug log is on (the cache lookups show it), and
    // says nothing was passed on.
    assert!(said.contains("stslib: debug:"), "{said}");
    assert!(!said.contains(PASSED_ON), "a second copy was sent: {said}");
}

/// SIGINT sent to stslib alone by another process (`kill(2)`, as Python's
/// `send_signal(SIGINT)` and Go's `Process.Signal(os.Interrupt)` do)
/// reaches the child once; stslib waits and exits with its status.
#[test]
fn sigint_sent_to_stslib_alone_reaches_the_child() {
    let emu = emulator();
    let home = Home::new("sigint-pid", "", "");
    let ready = home.file("ready");
    let script = counting_sigints(&ready);
    let mut child = sigint_command(&home, &emu, &script)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&ready, &mut child);
    kill("-INT", &child.id().to_string());
    let status = wait_exit(&mut child);
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert_eq!(status.code(), Some(41), "{said}");
    assert!(said.contains(PASSED_ON), "{said}");
}

// ------------------------------------------------------------ --server

/// A child that writes its endpoint, token and environment, then waits
/// for stdin to close.
struct Served {
    child: Child,
    addr: SocketAddr,
    path: String,
    token: String,
    env: BTreeMap<String, String>,
}

fn start_served(home: &Home, emu: &Emulator, env: &[(&str, &str)]) -> Served {
    let out = home.file("endpoint");
    let dump = home.file("server-env");
    let script = format!(
        "env > '{d}'; printf '%s %s\\n' \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\" \
         \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" > '{o}'; read line || true",
        d = dump.display(),
        o = out.display()
    );
    let mut child = home
        .command(
            emu,
            &[
                "--server",
                "--profile",
                "a",
                "--mfa-code",
                CODE,
                "--",
                "sh",
                "-c",
                &script,
            ],
            env,
        )
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_file(&out, &mut child);
    let (uri, token) = line.trim().split_once(' ').expect("uri and token");
    let rest = uri.strip_prefix("http://").expect("http URI");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    Served {
        addr: authority.parse().expect("an IP:port authority"),
        path: path.to_owned(),
        token: token.to_owned(),
        env: env_file(&dump),
        child,
    }
}

impl Served {
    /// Ends the child (stdin closed) and returns stslib's exit status.
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.child.stdin.take());
        let status = wait_exit(&mut self.child);
        if !status.success() {
            let mut err = String::new();
            let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
            eprintln!("stslib stderr: {err}");
        }
        status
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token
            .map(|t| format!("Authorization: {t}\r\n"))
            .unwrap_or_default();
        raw(
            self.addr,
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", self.addr).as_bytes(),
        )
    }

    fn credentials(&self) -> serde_json::Value {
        let (status, body) = self.get(&self.path, Some(&self.token));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Sends `request`, reads the whole response; (status, body).
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("a response within 5 s");
    parse_response(&text)
}

fn parse_response(text: &str) -> (u16, String) {
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_owned())
}

#[test]
fn server_serves_the_container_credentials_protocol() {
    let emu = emulator();
    let home = Home::new("server", "", "");
    let s = start_served(&home, &emu, &[("AWS_SESSION_TOKEN", "stale")]);
    assert_eq!(s.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(s.addr.port(), 0);
    assert_eq!(s.token.len(), 64, "256 bits, hex");
    for gone in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        assert!(!s.env.contains_key(gone), "{gone} passed on with --server");
    }
    assert_eq!(s.env["AWS_REGION"], "eu-west-3");
    assert!(
        !s.env.contains_key("AWS_SHARED_CREDENTIALS_FILE"),
        "no [default] keys to hide"
    );
    let v = s.credentials();
    for field in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(
            v[field].as_str().is_some_and(|x| !x.is_empty()),
            "{field}: {v}"
        );
    }
    assert!(v["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    let exp = time::OffsetDateTime::parse(
        v["Expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(exp > time::OffsetDateTime::now_utc());
    // Authorization: missing, wrong, a prefix, twice -> 403; path, method.
    assert_eq!(s.get(&s.path, None).0, 403);
    assert_eq!(s.get(&s.path, Some("wrong")).0, 403);
    assert_eq!(s.get(&s.path, Some(&s.token[..63])).0, 403);
    assert_eq!(s.get(&s.path, Some(&format!("Bearer {}", s.token))).0, 403);
    let twice = format!(
        "GET {} HTTP/1.1\r\nAuthorization: {t}\r\nAuthorization: {t}\r\n\r\n",
        s.path,
        t = s.token
    );
    assert_eq!(raw(s.addr, twice.as_bytes()).0, 403);
    assert_eq!(s.get("/other", Some(&s.token)).0, 404);
    let post = format!(
        "POST {} HTTP/1.1\r\nAuthorization: {}\r\n\r\n",
        s.path, s.token
    );
    assert_eq!(raw(s.addr, post.as_bytes()).0, 405);
    let addr = s.addr;
    assert_eq!(s.finish().code(), Some(0));
    // Stopped with the child: nothing listens any more.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// Whether a read failed because our own read timeout ran out.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[test]
fn server_survives_hostile_clients() {
    let emu = emulator();
    let home = Home::new("hostile", "", "");
    let s = start_served(&home, &emu, &[]);
    // Garbage and malformed heads: 400, and the server goes on.
    assert_eq!(raw(s.addr, b"\x00\x01\x02garbage\r\n\r\n").0, 400);
    assert_eq!(raw(s.addr, b"GET / HTTP/9.9\r\n\r\n").0, 400);
    assert_eq!(
        raw(s.addr, b"GET / HTTP/1.1\r\nno-colon-here\r\n\r\n").0,
        400
    );
    // A huge header: refused at the bound (431), or the connection reset
    // while we were still sending; never an unbounded read.
    {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 1 << 20));
        let _ = c.write_all(&head);
        let mut text = String::new();
        match c.read_to_string(&mut text) {
            Ok(_) if !text.is_empty() => assert_eq!(parse_response(&text).0, 431),
            // Our read timing out means the server neither answered nor
            // closed: the unbounded wait this test is here to catch.
            Err(e) => assert!(!timed_out(&e), "no answer and no close: {e}"),
            Ok(_) => {} // closed with unread input
        }
    }
    // Slowloris: connections that send nothing or trickle a few bytes,
    // none of them holding a thread. A real request is still answered, and
    // the slow ones are cut off by the server's deadline.
    let mut slow: Vec<TcpStream> = (0..12)
        .map(|_| {
            let c = TcpStream::connect(s.addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        })
        .collect();
    for c in slow.iter_mut().take(6) {
        c.write_all(b"GET / HT").unwrap();
    }
    assert_eq!(
        s.credentials()["AccessKeyId"].as_str().map(|k| &k[..4]),
        Some("ASIA")
    );
    for mut c in slow {
        let _ = c.write_all(b"T");
        let mut text = String::new();
        // 408 (or a bare close): the server did not wait for us forever.
        let r = c.read_to_string(&mut text);
        // A reset is a close too; our own read timing out (10 s) is not.
        if let Err(e) = &r {
            assert!(!timed_out(e), "a slow connection was never cut off: {e}");
        }
        assert!(r.is_ok() || text.is_empty(), "{r:?}");
        if !text.is_empty() {
            assert_eq!(parse_response(&text).0, 408, "{text}");
        }
    }
    // A flood of idle connections beyond the server's cap (128): a request
    // is answered at its first attempt, the flood's oldest connections
    // being closed to make room.
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(s.addr).ok())
        .collect();
    assert_eq!(s.get(&s.path, Some(&s.token)).0, 200);
    drop(flood);
    assert_eq!(
        s.credentials()["Token"].as_str().map(str::is_empty),
        Some(false)
    );
    assert_eq!(s.finish().code(), Some(0));
}

/// Sends `request` and reads the whole response, or says why not: a reset,
/// a close without an answer, or no answer within 10 s.
fn attempt(addr: SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    if text.is_empty() {
        return Err("closed without an answer".into());
    }
    Ok(parse_response(&text))
}

/// The attack from the review: idle connections, more than the server
/// keeps open (128) and than its old workers and queue (4 + 32), re-opened
/// again and again, half of them sending nothing and half a partial head.
/// A client that connects and sends its request at once is answered every
/// time, at its first attempt: the server closes the oldest unfinished
/// connections to make room, never the newest. Then the child exits with
/// the flood still open and the server stops.
#[test]
fn server_answers_a_prompt_client_through_an_idle_connection_flood() {
    const FLOOD: usize = 64;
    const ROUNDS: usize = 25;
    let emu = emulator();
    let home = Home::new("flood", "", "");
    let s = start_served(&home, &emu, &[]);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        s.path, s.addr, s.token
    );
    // Each round opens 64 connections and closes those from three rounds
    // before: 192 stay open across each legitimate request, as they would
    // if re-opened just before the server's deadline. (64 at a time stays
    // within the listen backlog of 128, so connects are not slowed down by
    // dropped SYNs; the flood is no weaker for it.)
    let mut open: std::collections::VecDeque<Vec<TcpStream>> = Default::default();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let newer: Vec<TcpStream> = (0..FLOOD)
            .map(|i| {
                let mut c = TcpStream::connect(s.addr).expect("flood connect");
                if i % 2 == 1 {
                    let _ = c.write_all(b"GET / HT");
                }
                c
            })
            .collect();
        open.push_back(newer);
        if open.len() > 3 {
            drop(open.pop_front());
        }
        match attempt(s.addr, request.as_bytes()) {
            Ok((200, body)) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert!(
                    v["AccessKeyId"]
                        .as_str()
                        .is_some_and(|k| k.starts_with("ASIA")),
                    "{v}"
                );
                assert!(v["Token"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
            }
            Ok((status, body)) => failures.push(format!("round {round}: {status} {body}")),
            Err(e) => failures.push(format!("round {round}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ROUNDS} requests not served during the flood: {failures:#?}",
        failures.len()
    );
    let addr = s.addr;
    assert_eq!(s.finish().code(), Some(0), "stopped with the flood open");
    drop(open);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// With 2-second role credentials the refresher renews the role while the
/// child runs, and the endpoint serves each new set: a child that keeps
/// asking (as an SDK does when its copy nears expiry) sees them change
/// without restarting, and is never served expired credentials.
#[test]
fn server_serves_refreshed_credentials_while_the_child_runs() {
    let emu = Emulator::builder()
        .user("alice", USER_KEY, USER_SECRET)
        .mfa_device("alice", SERIAL, CODE)
        .role_lifetime(Duration::from_secs(2))
        .start()
        .unwrap();
    let home = Home::new("refresh", "", "");
    // A warm cache first (token and role): the served session must still
    // take the token and refresh the cached role.
    let o = home.run(
        &emu,
        &["--profile", "a", "--mfa-code", CODE, "--", "true"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = start_served(&home, &emu, &[]);
    let mut keys: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(9);
    while keys.len() < 4 && Instant::now() < deadline {
        let v = s.credentials();
        let exp = time::OffsetDateTime::parse(
            v["Expiration"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(exp > time::OffsetDateTime::now_utc(), "served expired: {v}");
        let key = v["AccessKeyId"].as_str().unwrap().to_owned();
        if keys.last() != Some(&key) {
            keys.push(key);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        keys.len() >= 4,
        "only {} credential sets seen: {keys:?}",
        keys.len()
    );
    assert_eq!(s.finish().code(), Some(0));
}

/// With a 2-second session token, which `exec --server` cannot renew (no
/// MFA prompt while the command runs): the user is told once, not at every
/// retry, and once the token and the role have ended the endpoint answers
/// a `503` that says so (the SDKs show its message) instead of expired
/// credentials.
#[test]
fn server_says_once_that_the_session_token_cannot_be_renewed() {
    let emu = Emulator::builder()
        .user("alice", USER_KEY, USER_SECRET)
        .mfa_device("alice", SERIAL, CODE)
        .credential_lifetime(Duration::from_secs(2))
        .start()
        .unwrap();
    let home = Home::new("token-ends", "", "");
    let mut s = start_served(&home, &emu, &[]);
    assert_eq!(
        s.credentials()["AccessKeyId"].as_str().map(|k| &k[..4]),
        Some("ASIA")
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = s.get(&s.path, Some(&s.token));
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let exp = time::OffsetDateTime::parse(
            v["Expiration"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(exp > time::OffsetDateTime::now_utc(), "served expired: {v}");
        assert!(
            Instant::now() < deadline,
            "still served after the token ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("session token has ended"), "{message}");
    assert!(message.contains("restart the command"), "{message}");
    // The refresher went on retrying in the background (up to every few
    // milliseconds just before the end, then with backoff): one warning.
    drop(s.child.stdin.take());
    let status = wait_exit(&mut s.child);
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    s.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let warnings = err.matches("session token renewal failed").count();
    assert_eq!(warnings, 1, "{err}");
    assert!(err.contains("no MFA prompt for"), "{err}");
}

/// Names of the threads of process `pid`.
fn threads_of(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// With the role and the token in the cache (an earlier `exec`), the
/// served session makes no STS call, yet takes the cached token so that
/// its refresher runs: the cached role would otherwise just run out.
#[test]
fn server_keeps_refreshing_roles_taken_from_the_cache() {
    let emu = emulator();
    let home = Home::new("warm-cache", "", "");
    let o = home.run(
        &emu,
        &["--profile", "a", "--mfa-code", CODE, "--", "true"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let calls = emu.requests().len();
    let s = start_served(&home, &emu, &[]);
    assert_eq!(emu.requests().len(), calls, "served from the cache");
    if std::path::Path::new("/proc/self/task").is_dir() {
        let threads = threads_of(s.child.id());
        for name in ["stslib-refresh", "stslib-server", "stslib-signals"] {
            assert!(
                threads.iter().any(|t| t == name),
                "{name} missing: {threads:?}"
            );
        }
    }
    assert!(s.credentials()["AccessKeyId"].is_string());
    assert_eq!(s.finish().code(), Some(0));
}

#[test]
fn server_hides_default_keys_of_the_credentials_file_and_refuses_config_ones() {
    let emu = emulator();
    // `aws configure` style: [default] keys in the credentials file would
    // win over the endpoint in every SDK; the child gets /dev/null instead.
    let home = Home::new(
        "default-keys",
        "",
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = x\n",
    );
    let s = start_served(&home, &emu, &[]);
    assert_eq!(s.env["AWS_SHARED_CREDENTIALS_FILE"], "/dev/null");
    assert_eq!(s.finish().code(), Some(0));
    // In the config file: refused, naming file, line and key.
    let home = Home::new(
        "default-config",
        "[default]\ncredential_process = somewhere\n",
        "",
    );
    let o = home.run(
        &emu,
        &[
            "--server",
            "--profile",
            "a",
            "--mfa-code",
            CODE,
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("credential_process") && err.contains(".aws/config:"),
        "{err}"
    );
    // Without --server the environment variables win: no conflict.
    let o = home.run(
        &emu,
        &["--profile", "a", "--mfa-code", CODE, "--", "true"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
