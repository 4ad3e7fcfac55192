//! Transport settings: plain HTTP only on loopback, `HTTPS_PROXY` honoured
//! (seen by a proxy on 127.0.0.1; nothing leaves the machine), and
//! `AWS_CA_BUNDLE` as the only trust roots (an `openssl s_server` on
//! 127.0.0.1 with a certificate from a CA made for the test).
//! Timeouts: a silent server and a trickling one.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::responder::{Responder, Step};
use stslib::{AccessKey, Env, Error, Secret, StsClient};

fn keys() -> AccessKey {
    AccessKey {
        access_key_id: "AKIATRANSPORTTEST001".into(),
        secret_access_key: Secret::new("transport/secret"),
        session_token: None,
    }
}

#[test]
fn plain_http_is_refused_unless_loopback() {
    for url in [
        "http://sts.example.com",
        "http://10.0.0.1:8080",
        "http://[2001:db8::1]/",
    ] {
        let e = StsClient::builder().endpoint(url).build().unwrap_err();
        assert!(matches!(e, Error::InvalidEndpoint { .. }), "{url}: {e}");
    }
    for url in ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"] {
        assert!(StsClient::builder().endpoint(url).build().is_ok(), "{url}");
    }
}

/// A server on 127.0.0.1 that reads one request, then hands the stream to
/// `respond` (which runs until the client goes away or it returns).
fn one_shot_server(respond: fn(&mut TcpStream)) -> Responder {
    Responder::start(vec![Step::Raw(respond)])
}

/// Times one GetCallerIdentity with a 300 ms timeout and no retry.
fn timed_call(endpoint: &str) -> (Duration, Error) {
    let client = StsClient::builder()
        .endpoint(endpoint)
        .env(Env::from_pairs::<&str, &str>([]))
        .max_attempts(1)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = client.get_caller_identity(&keys()).unwrap_err();
    (started.elapsed(), e)
}

#[test]
fn a_silent_server_fails_the_attempt_after_the_timeout() {
    let endpoint = one_shot_server(|_| std::thread::sleep(Duration::from_secs(10)));
    let (took, e) = timed_call(&endpoint.url);
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_trickling_server_is_cut_off_by_the_phase_budget() {
    // One byte of the response head every 100 ms: no read waits 300 ms, so
    // only the phase budget (2 x 300 ms) can end the attempt; without it
    // the trickle would last 10 s.
    let endpoint = one_shot_server(|stream| {
        for b in b"HTTP/1.1 200 OK\r\nx-padding: "
            .iter()
            .chain([b'a'; 100].iter())
        {
            if stream.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (took, e) = timed_call(&endpoint.url);
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// What needs the `tls` feature: HTTPS through a proxy, and a CA bundle.
#[cfg(feature = "tls")]
mod tls {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use super::*;

    #[test]
    fn https_proxy_is_used_for_aws_endpoints() {
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = proxy.local_addr().unwrap();
        let seen = std::thread::spawn(move || {
            let (stream, _) = proxy.accept().unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            line // dropping the stream refuses the tunnel
        });
        let client = StsClient::builder()
            .region("eu-west-1")
            .env(Env::from_pairs([("HTTPS_PROXY", format!("http://{addr}"))]))
            .max_attempts(1)
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let e = client.get_caller_identity(&keys()).unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e}");
        let line = seen.join().unwrap();
        assert!(
            line.starts_with("CONNECT sts.eu-west-1.amazonaws.com:443 "),
            "{line:?}"
        );
    }

    /// An `openssl s_server` killed on drop.
    struct Server(Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for this test (Debian package `openssl`)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA, a server certificate for IP 127.0.0.1 signed by it, and an
    /// `openssl s_server` using it on a free loopback port.
    fn tls_server(dir: &Path) -> (Server, u16) {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=stslib test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "srv.key",
                    "-out",
                    "srv.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("srv.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "1",
                "-extfile",
                "srv.ext",
            ],
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
                "srv.pem",
                "-key",
                "srv.key",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server(child);
        let end = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        (server, port)
    }

    fn is_certificate_error(e: &Error) -> bool {
        let text = format!("{e} {:?}", std::error::Error::source(e)).to_ascii_lowercase();
        text.contains("certificate") || text.contains("unknownissuer") || text.contains("issuer")
    }

    #[test]
    fn aws_ca_bundle_is_the_trust_root() {
        let tmp = common::TempDir::new("tls");
        let dir = tmp.0.clone();
        let (_server, port) = tls_server(&dir);
        let endpoint = format!("https://127.0.0.1:{port}");
        let call = |env: Env| {
            StsClient::builder()
                .endpoint(&endpoint)
                .env(env)
                .max_attempts(1)
                .timeout(Duration::from_secs(2))
                .build()
                .and_then(|c| c.get_caller_identity(&keys()))
        };

        // The default roots do not know the test CA: the handshake fails.
        let e = call(Env::from_pairs([("HOME", "/nonexistent")])).unwrap_err();
        assert!(
            is_certificate_error(&e),
            "expected a certificate error: {e}"
        );

        // With the CA bundle the handshake succeeds; what fails now is that
        // s_server is no STS (its answer is not an STS response).
        let ca = dir.join("ca.pem");
        let e = call(Env::from_pairs([("AWS_CA_BUNDLE", ca.to_str().unwrap())])).unwrap_err();
        assert!(
            !is_certificate_error(&e),
            "TLS should have been accepted: {e}"
        );

        // A bundle that is not there, or holds no certificate: clear errors.
        let e = call(Env::from_pairs([("AWS_CA_BUNDLE", "/nonexistent/ca.pem")])).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/ca.pem"));
        std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        let empty = dir.join("empty.pem");
        let e = call(Env::from_pairs([(
            "AWS_CA_BUNDLE",
            empty.to_str().unwrap(),
        )]))
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "AWS_CA_BUNDLE",
                    ..
                }
            ),
            "{e}"
        );
    }
}
