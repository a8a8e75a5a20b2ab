//! E-mail with an attached file, through SMTP (lettre).
//!
//! The SMTP server comes from `smtp.url` (`smtp://host:port` plain, `smtp://host?tls=required`
//! STARTTLS, `smtps://host` TLS; credentials as `smtp://user:pass@host`), the sender from
//! `smtp.from`.

use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Larger attachments are refused with a clear error: most mail servers reject them anyway.
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    pub fn new(url: &str, from: &str) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("smtp.url: {e}"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("smtp.from {from:?}: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Sends `file` as an attachment named `name` to every address in `to`.
    pub async fn send_file(
        &self,
        to: &[String],
        subject: &str,
        body: &str,
        file: &Path,
        name: &str,
    ) -> Result<(), String> {
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            .len();
        if size > MAX_ATTACHMENT_BYTES {
            return Err(format!(
                "{name} is {size} bytes, over the {MAX_ATTACHMENT_BYTES}-byte attachment limit; download it from /api/exports instead"
            ));
        }
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let content_type = if name.ends_with(".xlsx") {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        } else {
            "text/csv; charset=utf-8"
        };
        let content_type = ContentType::parse(content_type).map_err(|e| e.to_string())?;
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for addr in to {
            let mailbox: Mailbox = addr
                .parse()
                .map_err(|e| format!("recipient {addr:?}: {e}"))?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(body.to_owned()))
                    .singlepart(Attachment::new(name.to_owned()).body(bytes, content_type)),
            )
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}
