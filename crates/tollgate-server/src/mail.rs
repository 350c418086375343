//! Outgoing email: over SMTP ([`Smtp`], `mail.smtp_url`) or, without SMTP, as `.eml` files
//! in an outbox directory ([`Outbox`]) with the message's link logged (development).

use crate::config::Config;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use std::path::PathBuf;

/// One message: plain text and HTML bodies of the same content.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The link the message carries, logged by the outbox (never by SMTP).
    pub link: String,
}

/// How a message went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the SMTP server.
    Sent,
    /// Written to the outbox directory.
    Outbox,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("cannot write to the outbox: {0}")]
    Outbox(#[from] std::io::Error),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("invalid smtp_url: {0}")]
    Url(String),
}

/// Something that sends mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    async fn send(&self, mail: &Mail) -> Result<Delivery, MailError>;
}

/// The mailer `config` asks for: SMTP when `mail.smtp_url` is set, else the outbox.
pub fn from_config(config: &Config) -> Result<Box<dyn Mailer>, MailError> {
    let sender: Mailbox = config
        .mail
        .sender
        .parse()
        .map_err(|e| MailError::Address(format!("mail.sender: {e}")))?;
    if config.mail.smtp_url.is_empty() {
        let dir = if config.mail.outbox_dir.is_empty() {
            config.server.data_dir.join("outbox")
        } else {
            PathBuf::from(&config.mail.outbox_dir)
        };
        Ok(Box::new(Outbox { dir, sender }))
    } else {
        Ok(Box::new(Smtp {
            transport: parse_smtp_url(&config.mail.smtp_url)?,
            sender,
        }))
    }
}

/// Builds the RFC 5322 message: From, To, Subject, Date, Message-ID and a
/// multipart/alternative body with the text and HTML parts.
fn build(sender: &Mailbox, mail: &Mail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Address(format!("`{}`: {e}", mail.to)))?;
    let domain = sender.email.domain().to_owned();
    Message::builder()
        .from(sender.clone())
        .to(to)
        .subject(mail.subject.clone())
        .date_now()
        .message_id(Some(format!("<{}@{domain}>", uuid::Uuid::new_v4())))
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Writes messages as `.eml` files into a directory and logs their links.
#[derive(Debug)]
pub struct Outbox {
    pub dir: PathBuf,
    pub sender: Mailbox,
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: &Mail) -> Result<Delivery, MailError> {
        let message = build(&self.sender, mail)?;
        tokio::fs::create_dir_all(&self.dir).await?;
        let name = format!("{}.eml", uuid::Uuid::now_v7());
        let path = self.dir.join(&name);
        // Written under a temporary name first, so readers never see half a message.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, message.formatted()).await?;
        tokio::fs::rename(&tmp, &path).await?;
        tracing::info!(to = %mail.to, path = %path.display(), link = %mail.link, "no SMTP configured: message written to the outbox");
        Ok(Delivery::Outbox)
    }
}

/// Sends messages through an SMTP server.
#[derive(Debug)]
pub struct Smtp {
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
    pub sender: Mailbox,
}

#[async_trait]
impl Mailer for Smtp {
    async fn send(&self, mail: &Mail) -> Result<Delivery, MailError> {
        let message = build(&self.sender, mail)?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        Ok(Delivery::Sent)
    }
}

/// `smtps://[user:pass@]host[:port]` (implicit TLS, default port 465) or
/// `smtp://[user:pass@]host[:port]` (default port 587): STARTTLS required, except to a
/// loopback host (`localhost`, 127.0.0.0/8, ::1), which is spoken to without TLS.
pub fn parse_smtp_url(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let u = url::Url::parse(url).map_err(|e| MailError::Url(e.to_string()))?;
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| MailError::Url("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if u.path() != "" && u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(MailError::Url(
            "give only scheme, credentials, host and port".into(),
        ));
    }
    let smtp_err = |e: lettre::transport::smtp::Error| MailError::Url(e.to_string());
    let builder = match u.scheme() {
        "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
            .map_err(smtp_err)?
            .port(u.port().unwrap_or(465)),
        "smtp" if is_loopback(&host) => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(u.port().unwrap_or(587))
        }
        "smtp" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
            .map_err(smtp_err)?
            .port(u.port().unwrap_or(587)),
        other => {
            return Err(MailError::Url(format!(
                "scheme `{other}`: use smtps:// or smtp://"
            )));
        }
    };
    let builder = if u.username().is_empty() {
        builder
    } else {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        builder.credentials(Credentials::new(
            decode(u.username()),
            decode(u.password().unwrap_or("")),
        ))
    };
    Ok(builder.timeout(Some(std::time::Duration::from_secs(15))).build())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Escapes text for HTML element content and quoted attribute values.
#[must_use]
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn smtp_urls() {
        assert!(parse_smtp_url("smtp://127.0.0.1:2525").is_ok());
        assert!(parse_smtp_url("smtp://user:p%40ss@mail.example.com:587").is_ok());
        assert!(parse_smtp_url("smtps://u:p@mail.example.com").is_ok());
        assert!(parse_smtp_url("http://mail.example.com").is_err());
        assert!(parse_smtp_url("smtp://mail.example.com/x?y").is_err());
    }
}
