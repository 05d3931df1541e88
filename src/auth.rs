//! Credentials as kubectl uses them, and what to say when the API server refuses them.
//!
//! kube-rs reads the kubeconfig like kubectl: client certificates (inline or files), bearer
//! tokens (inline or `tokenFile`) and `client.authentication.k8s.io` exec plugins; `--as` and
//! `--as-group` add kubectl's impersonation headers. Right after connecting, one cheap request
//! (a SelfSubjectReview: "who am I") checks the credentials, so that a wrong, expired or revoked
//! one, or a failing credential plugin, is reported once, on one line, with the context's name
//! — and never with the credential itself.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use std::path::Path;
use std::time::Duration;

/// Who the kubeconfig says we are: the context's name and its user's name, and the secrets
/// that must never be printed.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub context: String,
    pub user: String,
    /// The user's credential plugin, if it has one.
    pub exec_command: Option<String>,
    /// Tokens (inline or from the token file) to blank out of any message.
    secrets: Vec<String>,
}

impl Identity {
    /// Reads the context (`--context`, else the current one) of the kubeconfig (`--kubeconfig`,
    /// else `KUBECONFIG`, else `~/.kube/config`). Best effort: unknown parts stay empty.
    pub fn of(kubeconfig: Option<&Path>, context: Option<&str>) -> Identity {
        let kc = match kubeconfig {
            Some(path) => Kubeconfig::read_from(path).ok(),
            None => Kubeconfig::read().ok(),
        };
        let Some(kc) = kc else {
            return Identity {
                context: context.unwrap_or_default().to_string(),
                ..Default::default()
            };
        };
        let name = context
            .map(str::to_string)
            .or_else(|| kc.current_context.clone())
            .unwrap_or_default();
        let user = kc
            .contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let mut secrets = Vec::new();
        let mut exec_command = None;
        if let Some(info) = kc
            .auth_infos
            .iter()
            .find(|a| a.name == user)
            .and_then(|a| a.auth_info.as_ref())
        {
            use secrecy::ExposeSecret;
            exec_command = info.exec.as_ref().and_then(|e| e.command.clone());
            if let Some(t) = &info.token {
                secrets.push(t.expose_secret().to_string());
            }
            if let Some(path) = &info.token_file
                && let Ok(t) = std::fs::read_to_string(path)
            {
                secrets.push(t.trim().to_string());
            }
        }
        secrets.retain(|s| s.len() >= 4);
        Identity {
            context: name,
            user,
            exec_command,
            secrets,
        }
    }

    /// `text` without the secrets and without anything that looks like a token.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "[redacted]");
        }
        redact_tokens(&out)
    }
}

/// Whether a word (letters, digits and `._-/+=~`) looks like a credential: a JWT
/// (`eyJ….….…`), a long opaque string of letters and digits, or standard base64 (which has `/`
/// and `+`) long enough to be a key or token. Paths and URLs stay: they have `/` but also `.`,
/// `-` or `_`, or lack the mix of upper case, lower case and digits of encoded random bytes.
fn looks_like_token(word: &str) -> bool {
    let has = |f: fn(&char) -> bool| word.chars().any(|c| f(&c));
    if word.starts_with("eyJ") && word.matches('.').count() >= 2 {
        return true;
    }
    if word.len() < 40 || !has(char::is_ascii_digit) || !has(char::is_ascii_alphabetic) {
        return false;
    }
    if !word.contains('/') {
        return true;
    }
    word.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '+' | '='))
        && has(char::is_ascii_uppercase)
        && has(char::is_ascii_lowercase)
}

/// Blanks out words that look like bearer tokens or keys: JWTs (`eyJ….….…`), long opaque
/// strings, base64 with `/` and `+` (see [`looks_like_token`]).
pub fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if looks_like_token(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+' | '=' | '~') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The credentials did not work. Each message is one line, names the context and never the
/// credential.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AuthError {
    #[error(
        "context {context:?}: the API server at {server} rejected the credentials of user {user:?} (401 Unauthorized): they are wrong, expired or revoked; log in again or fix the kubeconfig"
    )]
    Rejected {
        context: String,
        user: String,
        server: String,
    },
    #[error("context {context:?}: {message}")]
    Plugin { context: String, message: String },
    #[error(
        "context {context:?}: user {user:?} may not impersonate as asked by --as/--as-group: {message}"
    )]
    Impersonation {
        context: String,
        user: String,
        message: String,
    },
    #[error(
        "context {context:?}: no answer from the API server within {seconds}s ({server}, checking the credentials); check that the cluster is reachable, or raise --request-timeout"
    )]
    NoAnswer {
        context: String,
        server: String,
        seconds: u64,
    },
}

/// Asks the server who we are; reports credentials it rejects and credential plugins that fail.
/// Other failures (a server without the API, a refused connection) are left to the first real
/// request, which explains them as usual.
pub async fn check(
    client: &kube::Client,
    id: &Identity,
    server: &str,
    timeout: Duration,
) -> Result<(), AuthError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    let answer =
        match tokio::time::timeout(timeout, api.create(&PostParams::default(), &review)).await {
            Err(_) => {
                return Err(AuthError::NoAnswer {
                    context: id.context.clone(),
                    server: server.to_string(),
                    seconds: timeout.as_secs().max(1),
                });
            }
            Ok(answer) => answer,
        };
    let Err(e) = answer else {
        return Ok(());
    };
    if let kube::Error::Api(status) = &e {
        return match status.code {
            401 => Err(AuthError::Rejected {
                context: id.context.clone(),
                user: id.user.clone(),
                server: server.to_string(),
            }),
            403 if status.message.contains("impersonate") => Err(AuthError::Impersonation {
                context: id.context.clone(),
                user: id.user.clone(),
                message: id.redact(&status.message),
            }),
            _ => Ok(()),
        };
    }
    match plugin_error(&e, id) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The error of a credential plugin or token file behind `e` (creating the client runs the
/// plugin already), if that is what failed.
pub fn plugin_error(e: &kube::Error, id: &Identity) -> Option<AuthError> {
    plugin_failure(e, id).map(|message| AuthError::Plugin {
        context: id.context.clone(),
        message: id.redact(&message),
    })
}

/// What went wrong with a credential plugin or token file, without its output.
fn plugin_failure(e: &kube::Error, id: &Identity) -> Option<String> {
    credential_failure(e, Some(&plugin_name(id)))
}

/// What went wrong obtaining the credentials behind `e` (a credential plugin that failed or
/// printed no credential, a token file that cannot be read), if that is what failed: never the
/// plugin's standard output (the credential itself), nor its command line and environment
/// (kube's own message carries all three); the first line of its standard error, with anything
/// that looks like a token blanked out. `plugin` names the plugin (`"/usr/bin/sso-login"`).
pub fn credential_failure(
    e: &(dyn std::error::Error + 'static),
    plugin: Option<&str>,
) -> Option<String> {
    use kube::client::AuthError as K;
    let plugin = plugin
        .filter(|p| !p.is_empty())
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(auth) = err.downcast_ref::<K>() {
            return Some(match auth {
                K::AuthExecRun { out, .. } => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let said = stderr
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(|l| format!(": {}", redact_tokens(l)))
                        .unwrap_or_default();
                    format!(
                        "the credential plugin{plugin} failed ({}){said}",
                        out.status
                    )
                }
                K::AuthExecStart(io) => {
                    format!("the credential plugin{plugin} could not be started: {io}")
                }
                K::AuthExecParse(_) | K::ExecPluginFailed => format!(
                    "the credential plugin{plugin} did not print an ExecCredential with a status (client.authentication.k8s.io/v1)"
                ),
                K::ReadTokenFile(io, path) => {
                    format!("cannot read the token file {}: {io}", path.display())
                }
                K::MalformedTokenExpirationDate(_) => {
                    "the credential plugin's expirationTimestamp is not a valid time".to_string()
                }
                K::AuthExec(_) => format!(
                    "the credential plugin{plugin} failed (its output is not shown: it may hold the credential)"
                ),
                K::UnrefreshableTokenResponse => {
                    "the credential plugin gave a credential that cannot be refreshed".to_string()
                }
                // Other credential failures (basic auth, OAuth, OIDC) carry no plugin output,
                // but may carry what the provider said: blanked out like any message.
                other => format!(
                    "the credentials cannot be used: {}",
                    redact_tokens(&other.to_string())
                ),
            });
        }
        source = err.source();
    }
    None
}

fn plugin_name(id: &Identity) -> String {
    id.exec_command
        .as_ref()
        .map(|c| format!("{c:?}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show() {
        let id = Identity {
            context: "c".into(),
            user: "u".into(),
            exec_command: None,
            secrets: vec!["s3cr3t-value".into()],
        };
        assert_eq!(
            id.redact("token s3cr3t-value was refused"),
            "token [redacted] was refused"
        );
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(
            redact_tokens(&format!("bad token {jwt}, try again")),
            "bad token [redacted], try again"
        );
        let opaque = "sha256~AbCdEf0123456789AbCdEf0123456789AbCdEf01";
        assert_eq!(redact_tokens(opaque), "[redacted]");
        // Paths and plain words stay.
        assert_eq!(
            redact_tokens("/home/user/.kube/plugins/get-token failed: login required"),
            "/home/user/.kube/plugins/get-token failed: login required"
        );
    }

    /// Base64 holds `/` and `+`: a token or key with them is blanked out whole, while paths,
    /// URLs and API paths (which have `/` too) stay.
    #[test]
    fn tokens_with_slashes_never_show() {
        let b64 = "k8sT0ken/AbCdEf0123+456789/xYz0123456789AbCdEf==";
        assert_eq!(
            redact_tokens(&format!("credential {b64} refused")),
            "credential [redacted] refused"
        );
        let key_line = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun";
        assert_eq!(redact_tokens(key_line), "[redacted]");
        for kept in [
            "/apis/apps/v1/namespaces/kst-secrets-0123456789abcdef/statefulsets/db",
            "/tmp/.tmpAbC123/kst-secrets-1a2b3c4d5e6f7a8b9c0d/planted.kubeconfig",
            "https://127.0.0.1:6443/api/v1/namespaces/default/persistentvolumeclaims/data-db-0",
            "registry.example.com/team/postgres@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(redact_tokens(kept), kept);
        }
    }

    /// A credential plugin that fails mid-run: kube's message holds its standard output (the
    /// credential) and its command; the message made of it holds neither.
    #[test]
    fn a_failing_plugin_is_described_without_its_output() {
        use std::os::unix::process::ExitStatusExt;
        let err = kube::client::AuthError::AuthExecRun {
            cmd: "\"/usr/bin/sso\" \"--secret-arg\"".into(),
            out: Box::new(std::process::Output {
                status: std::process::ExitStatus::from_raw(3 << 8),
                stdout: br#"{"status":{"token":"plugin-printed-credential-42"}}"#.to_vec(),
                stderr: b"\nerror: login required, code AbCdEf0123456789AbCdEf0123456789AbCdEf01\n"
                    .to_vec(),
            }),
        };
        assert!(err.to_string().contains("plugin-printed-credential-42"));
        let wrapped = kube::Error::Auth(err);
        let text = credential_failure(&wrapped, Some("\"sso\"")).unwrap();
        assert_eq!(
            text,
            "the credential plugin \"sso\" failed (exit status: 3): error: login required, code [redacted]"
        );
        assert!(credential_failure(&kube::Error::LinesCodecMaxLineLengthExceeded, None).is_none());
    }
}
