//! The spec's text as diagnostics show it: lines longer than [`MAX_LINE`] bytes are clipped to a
//! window around the place an issue points at (`…` marks what was cut), so that a 200 KB line is
//! never echoed whole. Line numbers and columns in the snippet header stay those of the file.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Lines longer than this (in bytes) are clipped in snippets.
pub const MAX_LINE: usize = 160;
/// How much of a clipped line is shown before the position an issue points at.
const BEFORE: usize = 48;
/// The marker for clipped text.
const ELLIPSIS: &str = "…";

/// A run of the original text kept in the displayed text.
#[derive(Debug, Clone, Copy)]
struct Kept {
    display: usize,
    original: usize,
    len: usize,
}

/// The source of a spec diagnostic: the original text for positions, a clipped copy for display.
#[derive(Debug)]
pub struct SpecSource {
    name: String,
    original: String,
    /// `None` when no line needed clipping (the original is shown as it is).
    display: Option<String>,
    kept: Vec<Kept>,
}

impl SpecSource {
    /// The source of `text`, clipping long lines around the offsets in `points`.
    pub fn new(name: &str, text: &str, points: &[usize]) -> SpecSource {
        let mut source = SpecSource {
            name: name.to_string(),
            original: text.to_string(),
            display: None,
            kept: Vec::new(),
        };
        // Control characters (a NUL byte, an escape sequence) are shown as `?`: same length,
        // so every offset stays put.
        let sanitize = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_control() && !matches!(c, '\n' | '\t' | '\r') {
                        '?'
                    } else {
                        c
                    }
                })
                .collect()
        };
        let has_control = text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'));
        if !text.split('\n').any(|l| l.len() > MAX_LINE) {
            if has_control {
                source.display = Some(sanitize(text));
                source.kept = vec![Kept {
                    display: 0,
                    original: 0,
                    len: text.len(),
                }];
            }
            return source;
        }
        let mut display = String::with_capacity(text.len().min(1 << 20));
        let mut kept: Vec<Kept> = Vec::new();
        let mut keep = |display: &mut String, from: usize, to: usize| {
            if from >= to {
                return;
            }
            match kept.last_mut() {
                Some(k) if k.original + k.len == from && k.display + k.len == display.len() => {
                    k.len += to - from;
                }
                _ => kept.push(Kept {
                    display: display.len(),
                    original: from,
                    len: to - from,
                }),
            }
            display.push_str(&text[from..to]);
        };
        let mut start = 0;
        while start <= text.len() {
            let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
            if end - start <= MAX_LINE {
                keep(&mut display, start, end);
            } else {
                let point = points.iter().copied().find(|p| (start..=end).contains(p));
                let from = match point {
                    Some(p) => floor(text, p.saturating_sub(BEFORE).max(start)),
                    None => start,
                };
                let to = floor(text, (from + MAX_LINE).min(end));
                if from > start {
                    display.push_str(ELLIPSIS);
                }
                keep(&mut display, from, to);
                if to < end {
                    display.push_str(ELLIPSIS);
                }
            }
            if end < text.len() {
                keep(&mut display, end, end + 1);
            }
            start = end + 1;
        }
        source.display = Some(if has_control {
            sanitize(&display)
        } else {
            display
        });
        source.kept = kept;
        source
    }

    fn shown(&self) -> &str {
        self.display.as_deref().unwrap_or(&self.original)
    }

    /// Where an original byte offset is shown (the clipping marker for text that was cut).
    fn to_display(&self, offset: usize) -> usize {
        if self.display.is_none() {
            return offset;
        }
        let i = self.kept.partition_point(|k| k.original <= offset);
        match i.checked_sub(1).map(|i| self.kept[i]) {
            Some(k) if offset < k.original + k.len => k.display + (offset - k.original),
            Some(k) => k.display + k.len,
            None => 0,
        }
    }

    /// The original byte offset of a displayed one.
    fn to_original(&self, offset: usize) -> usize {
        if self.display.is_none() {
            return offset;
        }
        let i = self.kept.partition_point(|k| k.display <= offset);
        match i.checked_sub(1).map(|i| self.kept[i]) {
            Some(k) => k.original + (offset - k.display).min(k.len),
            None => 0,
        }
    }

    /// The displayed span of an original one.
    pub fn display_span(&self, span: SourceSpan) -> SourceSpan {
        let start = self.to_display(span.offset());
        let end = self.to_display(span.offset() + span.len()).max(start);
        SourceSpan::new(start.into(), end - start)
    }

    /// 0-based column (in characters) of an original offset.
    fn column(&self, offset: usize) -> usize {
        let offset = floor(&self.original, offset.min(self.original.len()));
        let line_start = self.original[..offset].rfind('\n').map_or(0, |i| i + 1);
        self.original[line_start..offset].chars().count()
    }
}

/// The largest char boundary of `text` at or below `i`.
fn floor(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl SourceCode for SpecSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .shown()
            .read_span(span, context_lines_before, context_lines_after)?;
        // Columns are counted in characters of the original line, as in every other message.
        let column = self.column(self.to_original(inner.span().offset()));
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            column,
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_clipped_around_the_point_and_positions_kept() {
        let long = format!("key = \"{}\"", "x".repeat(200_000));
        let text = format!("a = 1\n{long}\nb = 2\n");
        let point = 6 + 7 + 100_000;
        let source = SpecSource::new("s.toml", &text, &[point]);
        let shown = source.shown();
        assert!(shown.len() < 600, "{}", shown.len());
        assert!(shown.starts_with("a = 1\n…"), "{shown}");
        assert!(shown.ends_with("…\nb = 2\n"), "{shown}");
        let span = source.display_span(SourceSpan::new(point.into(), 3));
        assert_eq!(&shown[span.offset()..span.offset() + 3], "xxx");
        let contents = source.read_span(&span, 0, 0).unwrap();
        assert_eq!((contents.line(), contents.column()), (1, 100_007));
        // A context line without a point shows its start.
        let source = SpecSource::new("s.toml", &text, &[0]);
        assert!(source.shown().contains("\nkey = \"xxx"));
    }

    #[test]
    fn short_texts_are_shown_as_they_are() {
        let source = SpecSource::new("s.toml", "a = 1\n", &[0]);
        assert!(source.display.is_none());
        assert_eq!(
            source.display_span(SourceSpan::new(4.into(), 1)),
            SourceSpan::new(4.into(), 1)
        );
    }
}
