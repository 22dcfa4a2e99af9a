//! The text log format's fields and messages with every character that could end,
//! rewind or disguise a line escaped, so text from clients and plugins (usernames,
//! URLs, guest log lines, error messages) can never forge a log line. The JSON format
//! needs none of this: serde escapes control characters inside its strings.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// `FormatFields` for the text format: `message name=value …` like the default, every
/// value escaped (see [`needs_escape`]). Spans' fields go through it too.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// C0 and C1 controls (newline, carriage return, tab, ESC, DEL, NEL, …), the Unicode
/// line and paragraph separators, and the bidirectional overrides that make a line
/// read differently from what it contains.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes through to `W`, escaping as Rust does: `\n`, `\r`, `\t`, `\u{1b}`.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                other => write!(self.0, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // tracing-log's metadata, which the formatter shows as target and location.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = if name == "message" {
            self.writer.write_str(separator)
        } else {
            write!(self.writer, "{separator}{}=", name.trim_start_matches("r#"))
        }
        .and_then(|()| write!(Escaped(&mut self.writer), "{value}"));
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let sources: Vec<String> = std::iter::successors(value.source(), |e| e.source())
            .map(ToString::to_string)
            .collect();
        if sources.is_empty() {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(
                field,
                format_args!("{value} {}.sources={sources:?}", field.name()),
            );
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the text format writes for the events `log` emits.
    fn text_log(log: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .with_writer(move || SharedBuf(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const FORGED: &str = "x\n2026-01-01T00:00:00Z  INFO forged: admin logged in";

    #[test]
    fn messages_and_every_kind_of_field_stay_on_one_line() {
        let evil = "a\r\tb\u{1b}[31mc\u{85}d\u{2028}e\u{202e}f\u{7f}";
        let out = text_log(|| {
            let span = tracing::info_span!("request", route = %FORGED);
            let _in = span.enter();
            tracing::info!(username = %FORGED, debug = ?FORGED, plain = FORGED, "{FORGED}");
            tracing::warn!(other = %evil, "{evil}");
            let err = std::io::Error::other(FORGED.to_string());
            tracing::error!(error = &err as &(dyn std::error::Error + 'static), "failed");
        });
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(!out.lines().any(|l| l.starts_with("2026-01-01T00")), "{out}");
        assert!(
            out.contains(r"username=x\n2026-01-01T00:00:00Z  INFO forged"),
            "{out}"
        );
        assert!(out.contains(r#"plain="x\n2026"#), "{out}");
        assert!(out.contains(r"request{route=x\n2026"), "{out}");
        assert!(
            out.contains(r" x\n2026-01-01T00:00:00Z  INFO forged: admin logged in"),
            "{out}"
        );
        assert!(
            out.contains(r"a\r\tb\u{1b}[31mc\u{85}d\u{2028}e\u{202e}f\u{7f}"),
            "{out}"
        );
        assert!(out.contains(r"error=x\n2026"), "{out}");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let out = text_log(|| tracing::info!(user = %"zoë", n = 3, "plain ünïcode, \"quotes\" and \\"));
        assert!(
            out.trim_end()
                .ends_with(r#"plain ünïcode, "quotes" and \ user=zoë n=3"#),
            "{out}"
        );
    }
}
