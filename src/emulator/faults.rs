//! Deciding the answer to one request: apply the injected fault, if any,
//! else let the service answer; then record the request.

use super::http::{self, Request, Response};
use super::kms;
use super::server::Outcome;
use super::service::{self, Form, IAM_NS, STS_NS};
use super::{lock, sigv4, Action, Fault, RequestRecord, Shared};

/// Decides the answer to one request, applying any injected fault, and
/// records it.
pub(super) fn respond(shared: &Shared, conn: usize, req: &Request) -> Outcome {
    // KMS (JSON 1.1) by its target header or credential scope; else the
    // Query protocol of STS and IAM.
    let is_kms = kms::is_kms(req);
    let form = if is_kms {
        Form::default()
    } else {
        Form::parse(&req.body)
    };
    let service = service::service_of(req);
    let ns = if service == "iam" { IAM_NS } else { STS_NS };
    let (action_name, action) = if is_kms {
        let name = kms::operation(req);
        let action = name.as_deref().and_then(kms::action_of);
        (name, action)
    } else {
        let name = form.get("Action").map(str::to_owned);
        let action = name
            .as_deref()
            .and_then(|n| service::action_of(&service, n));
        (name, action)
    };
    let fault = shared.take_fault(action);
    let request_id = service::request_id();
    let close = !req.keep_alive() || shared.stopping();

    let mut code = None;
    let outcome = match &fault {
        None | Some(Fault::Delay(_)) => {
            if let Some(Fault::Delay(d)) = fault {
                if !shared.sleep(d) {
                    return Outcome::Drop;
                }
            }
            let answer = {
                let mut state = lock(&shared.state);
                if is_kms {
                    kms::handle(&shared.cfg, &mut state, req, shared.now(), &request_id)
                } else {
                    service::handle(
                        &shared.cfg,
                        &mut state,
                        req,
                        &form,
                        shared.now(),
                        &request_id,
                    )
                }
            };
            code = answer.code;
            Outcome::Send {
                response: answer.response,
                close,
            }
        }
        Some(Fault::Error {
            status,
            code: c,
            message,
        }) => {
            code = Some(c.clone());
            let response = if is_kms {
                kms::error_response(*status, c, message, &request_id)
            } else {
                service::error_response(ns, *status, c, message, &request_id)
            };
            Outcome::Send { response, close }
        }
        Some(Fault::Stall(d)) => Outcome::Stall(*d),
        Some(Fault::DropConnection) => Outcome::Drop,
        Some(Fault::ResetConnection) => Outcome::Reset,
        Some(Fault::TruncatedBody) if is_kms => Outcome::Truncated(kms::json_response(
            200,
            kms::canned_body(action, &shared.cfg.account_id, false),
            &request_id,
        )),
        Some(Fault::TruncatedBody) => Outcome::Truncated(service::xml_response(
            200,
            canned_body(action, ns, &request_id, false),
            &request_id,
        )),
        Some(Fault::MalformedXml) if is_kms => Outcome::Send {
            response: kms::json_response(
                200,
                "{\"KeyId\": \"arn:aws:kms:us-east-1:1:key/x\", \"Plaintext\": ".to_owned(),
                &request_id,
            ),
            close,
        },
        Some(Fault::MalformedXml) => {
            let name = action.unwrap_or(Action::GetCallerIdentity).name();
            let body = format!(
                "<{name}Response xmlns=\"{ns}\"><{name}Result><Credentials><AccessKeyId>ASIA</Credentials>&bogus;</{name}Result"
            );
            Outcome::Send {
                response: service::xml_response(200, body, &request_id),
                close,
            }
        }
        Some(Fault::HtmlError(status)) => Outcome::Send {
            response: html_error(*status),
            close,
        },
        Some(Fault::WrongShape) if is_kms => Outcome::Send {
            response: kms::json_response(
                200,
                kms::canned_body(action, &shared.cfg.account_id, true),
                &request_id,
            ),
            close,
        },
        Some(Fault::WrongShape) => Outcome::Send {
            response: service::xml_response(
                200,
                canned_body(action, ns, &request_id, true),
                &request_id,
            ),
            close,
        },
        Some(Fault::Oversized(size)) => Outcome::Oversized {
            response: service::xml_response(200, String::new(), &request_id),
            size: *size,
        },
        Some(Fault::AuthErrorLayout { code: c, message }) => {
            code = Some(c.clone());
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse>\n  <Errors>\n    <Error>\n      <Code>{}</Code>\n      <Message>{}</Message>\n      <Type>Sender</Type>\n    </Error>\n  </Errors>\n</ErrorResponse>\n",
                service::xml_escape(c),
                service::xml_escape(message)
            );
            Outcome::Send {
                response: Response {
                    status: 403,
                    content_type: "text/html; charset=utf-8",
                    headers: Vec::new(),
                    body: body.into_bytes(),
                },
                close,
            }
        }
    };

    let status = match &outcome {
        Outcome::Send { response, .. }
        | Outcome::Truncated(response)
        | Outcome::Oversized { response, .. } => Some(response.status),
        _ => None,
    };
    let auth = req
        .header("authorization")
        .and_then(|v| sigv4::parse_authorization(v).ok());
    let record = RequestRecord {
        connection: conn,
        action,
        action_name,
        access_key_id: auth.map(|a| a.access_key_id),
        status,
        code,
        fault,
        duration_seconds: form.get("DurationSeconds").and_then(|d| d.parse().ok()),
        role_arn: form.get("RoleArn").map(str::to_owned),
        role_session_name: form.get("RoleSessionName").map(str::to_owned),
        serial_number: form.get("SerialNumber").map(str::to_owned),
        external_id: form.get("ExternalId").map(str::to_owned),
        kms_key_id: if is_kms {
            kms::key_id_of(&req.body)
        } else {
            None
        },
    };
    log::debug!(
        "emulator: conn {} {} key {} -> {} {}{}",
        conn,
        record.action_name.as_deref().unwrap_or("-"),
        record.access_key_id.as_deref().unwrap_or("-"),
        status.map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
        record.code.as_deref().unwrap_or(""),
        if record.fault.is_some() {
            " (fault)"
        } else {
            ""
        },
    );
    lock(&shared.records).push(record);
    outcome
}

/// A well-formed success document: for `wrong_shape`, of another action
/// than `action`; else of `action` itself, with placeholder values.
fn canned_body(action: Option<Action>, ns: &str, request_id: &str, wrong_shape: bool) -> String {
    let own = action.unwrap_or(Action::GetCallerIdentity);
    let shape = match (wrong_shape, own) {
        (true, Action::GetCallerIdentity) => Action::GetSessionToken,
        (true, _) => Action::GetCallerIdentity,
        (false, a) => a,
    };
    let meta = format!("<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>");
    let creds = "<Credentials><AccessKeyId>ASIAPLACEHOLDER00000</AccessKeyId><SecretAccessKey>placeholder</SecretAccessKey><SessionToken>placeholder</SessionToken><Expiration>2000-01-01T00:00:00Z</Expiration></Credentials>";
    match shape {
        Action::GetSessionToken => format!(
            "<GetSessionTokenResponse xmlns=\"{STS_NS}\"><GetSessionTokenResult>{creds}</GetSessionTokenResult>{meta}</GetSessionTokenResponse>"
        ),
        Action::AssumeRole => format!(
            "<AssumeRoleResponse xmlns=\"{STS_NS}\"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROAPLACEHOLDER:s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/placeholder/s</Arn></AssumedRoleUser>{creds}<PackedPolicySize>0</PackedPolicySize></AssumeRoleResult>{meta}</AssumeRoleResponse>"
        ),
        Action::ListMFADevices => format!(
            "<ListMFADevicesResponse xmlns=\"{ns}\"><ListMFADevicesResult><MFADevices/><IsTruncated>false</IsTruncated></ListMFADevicesResult>{meta}</ListMFADevicesResponse>"
        ),
        _ => format!(
            "<GetCallerIdentityResponse xmlns=\"{STS_NS}\"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/placeholder</Arn><UserId>AIDAPLACEHOLDER</UserId><Account>123456789012</Account></GetCallerIdentityResult>{meta}</GetCallerIdentityResponse>"
        ),
    }
}

/// An HTML error page in the style of Werkzeug (moto's server).
fn html_error(status: u16) -> Response {
    let reason = http::reason(status);
    let text = if status == 500 {
        "The server encountered an internal error and was unable to complete your request. \
         Either the server is overloaded or there is an error in the application."
    } else {
        "The server could not handle the request."
    };
    let body = format!(
        "<!doctype html>\n<html lang=en>\n<title>{status} {reason}</title>\n<h1>{reason}</h1>\n<p>{text}</p>\n"
    );
    Response {
        status,
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
        body: body.into_bytes(),
    }
}
