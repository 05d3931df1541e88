//! Consumers of rollout events: live progress on a terminal (indicatif), one plain line per event
//! otherwise, or JSON lines. None of them changes what the executor does.

use crate::apply::{Event, Sink};
use crate::kinds::ObjectRef;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Formats one event as a plain line (also used for the terminal view's finished lines).
pub fn plain_line(event: &Event) -> String {
    match event {
        Event::Phase { name, objects, .. } => format!("==> {name} ({objects})"),
        Event::Applied {
            object,
            action,
            seconds,
        } => {
            let verb = match action {
                crate::plan::Action::Create => "created",
                crate::plan::Action::Adopt => "adopted",
                _ => "updated",
            };
            format!("{}: {verb} ({seconds:.1}s)", object.short())
        }
        Event::Unchanged { object } => format!("{}: unchanged", object.short()),
        Event::Deleted { object, seconds } => {
            format!("{}: deleted ({seconds:.1}s)", object.short())
        }
        Event::Waiting { object, message } => format!("{}: {message}", object.short()),
        Event::Retrying { message } => format!("retrying: {message}"),
        Event::Deferred { object, message } => format!("{}: {message}", object.short()),
        Event::Ready {
            object,
            message,
            seconds,
        } => format!("{}: ready: {message} ({seconds:.1}s)", object.short()),
        Event::Failed {
            object,
            message,
            details,
        } => {
            let mut s = format!("{}: FAILED: {message}", object.short());
            for d in details {
                s.push_str(&format!("\n    {d}"));
            }
            s
        }
        Event::Interrupted { signal, not_done } => {
            let what = if not_done.is_empty() {
                "nothing left to do".to_string()
            } else {
                format!(
                    "not done: {}",
                    not_done
                        .iter()
                        .map(ObjectRef::short)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "Interrupted by {}: writes in flight were finished, nothing else was started; {what}. Run apply again to continue.",
                signal.name()
            )
        }
        Event::Finished {
            ok,
            applied,
            unchanged,
            failed,
            seconds,
        } => format!(
            "Apply {}: {applied} applied, {unchanged} unchanged, {failed} failed in {seconds:.1}s.",
            if *ok { "complete" } else { "failed" }
        ),
    }
}

/// Plain lines with a timestamp relative to the start, for CI logs.
pub struct PlainSink {
    start: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl PlainSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        PlainSink {
            start: Instant::now(),
            out: Mutex::new(out),
        }
    }
}

impl Sink for PlainSink {
    fn emit(&self, event: Event) {
        let line = plain_line(&event);
        let mut out = self.out.lock().expect("output lock");
        let _ = writeln!(out, "[{:>6.1}s] {line}", self.start.elapsed().as_secs_f64());
        let _ = out.flush();
    }
}

/// JSON lines, one object per event (`{"event":"ready",...}`).
pub struct JsonSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonSink {
            out: Mutex::new(out),
        }
    }
}

impl Sink for JsonSink {
    fn emit(&self, event: Event) {
        let mut out = self.out.lock().expect("output lock");
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&event).expect("events serialize")
        );
        let _ = out.flush();
    }
}

/// Live progress on a terminal: a spinner per object being waited on, finished lines above.
pub struct ProgressSink {
    multi: MultiProgress,
    bars: Mutex<HashMap<ObjectRef, ProgressBar>>,
}

impl ProgressSink {
    /// Progress on standard output (where the plan was shown), so that it is seen even when
    /// standard error goes to a file.
    pub fn new() -> Self {
        ProgressSink {
            multi: MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, object: &ObjectRef) -> ProgressBar {
        let mut bars = self.bars.lock().expect("bars lock");
        bars.entry(object.clone())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                        .expect("valid template"),
                );
                bar.set_prefix(object.short());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }

    fn finish(&self, object: &ObjectRef) {
        if let Some(bar) = self.bars.lock().expect("bars lock").remove(object) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for ProgressSink {
    fn emit(&self, event: Event) {
        match &event {
            Event::Waiting { object, message } => self.bar(object).set_message(message.clone()),
            Event::Ready { object, .. }
            | Event::Failed { object, .. }
            | Event::Deferred { object, .. } => {
                self.finish(object);
                let _ = self.multi.println(plain_line(&event));
            }
            _ => {
                let _ = self.multi.println(plain_line(&event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kind;
    use crate::plan::Action;

    fn pvc(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::PersistentVolumeClaim,
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    #[test]
    fn plain_lines() {
        assert_eq!(
            plain_line(&Event::Phase {
                kind: Kind::StorageClass,
                name: "StorageClasses".into(),
                objects: 2
            }),
            "==> StorageClasses (2)"
        );
        assert_eq!(
            plain_line(&Event::Applied {
                object: pvc("data"),
                action: Action::Create,
                seconds: 0.25
            }),
            "pvc/data: created (0.2s)"
        );
        assert_eq!(
            plain_line(&Event::Failed {
                object: pvc("data"),
                message: "timed out after 15s: waiting for the claim to be Bound".into(),
                details: vec![
                    "pvc/data: Normal FailedBinding: no persistent volumes available".into()
                ],
            }),
            "pvc/data: FAILED: timed out after 15s: waiting for the claim to be Bound\n    pvc/data: Normal FailedBinding: no persistent volumes available"
        );
        assert_eq!(
            plain_line(&Event::Finished {
                ok: true,
                applied: 3,
                unchanged: 1,
                failed: 0,
                seconds: 4.0
            }),
            "Apply complete: 3 applied, 1 unchanged, 0 failed in 4.0s."
        );
    }

    /// The JSON lines are a documented interface: one object per line, tagged by `event`.
    #[test]
    fn json_lines_shape() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = JsonSink::new(Box::new(buf.clone()));
        sink.emit(Event::Ready {
            object: pvc("data"),
            message: "Bound to pv-1".into(),
            seconds: 1.5,
        });
        sink.emit(Event::Deferred {
            object: pvc("late"),
            message: "waits for first consumer".into(),
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"event": "ready", "object": {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "data"},
                               "message": "Bound to pv-1", "seconds": 1.5})
        );
        assert_eq!(lines[1]["event"], "deferred");
    }
}
