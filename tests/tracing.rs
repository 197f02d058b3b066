//! Feature `tracing` (issue 28): what a runtime reports reaches `tracing` as events whose fields
//! say why (`cause.kind`, `cause`, `cause.location`, `tag`, `scope`, `task`, `exit`), at the
//! level a service author expects, inside the spans of the members and named scopes they happen
//! in; a member's span is a child of the span current where it was spawned. Every scenario runs
//! on virtual time, under a subscriber that captures each event with its fields and its spans.
#![cfg(feature = "tracing")]

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Instrument, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use wherefore::{BoxError, Cancelled, Nursery, NurseryBuilder, Scope};

/// One captured event: its level, message, fields, and the spans it happened in (outermost
/// first), each as `name{fields}`.
#[derive(Clone, Debug)]
struct Captured {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
    spans: Vec<String>,
}

/// Fields as text: a string as itself, anything else as its `Debug`.
#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// A span's name and fields, kept in its extensions.
struct SpanText(String);

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let text = format!("{}{:?}", attrs.metadata().name(), fields.0);
        ctx.span(id)
            .unwrap()
            .extensions_mut()
            .insert(SpanText(text));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "wherefore" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| span.extensions().get::<SpanText>().unwrap().0.clone())
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            message,
            fields: fields.0,
            spans,
        });
    }
}

/// Runs `scenario` on virtual time under a capturing subscriber; returns what it captured.
fn captured<F: std::future::Future>(scenario: impl FnOnce() -> F) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        wherefore::testing::block_on(scenario());
    });
    capture.0.lock().unwrap().clone()
}

/// The one event with this message whose field `key` is `value`.
fn the<'a>(events: &'a [Captured], message: &str, key: &str, value: &str) -> &'a Captured {
    let found: Vec<_> = events
        .iter()
        .filter(|e| e.message == message && e.fields.get(key).map(String::as_str) == Some(value))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {message:?} with {key}={value}: {events:#?}"
    );
    found[0]
}

/// `fields` as a map, for comparing a whole event's fields at once.
fn fields(fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_deadline_firing_is_a_debug_event_naming_the_timeout() {
    let line = line!() + 2;
    let events = captured(|| async {
        let out = wherefore::move_on_after(secs(1), wherefore::sleep(secs(5)))
            .named("db-query")
            .await;
        assert!(matches!(out, Ok(None)));
    });
    let fired = the(&events, "deadline fired", "scope", "scope \"db-query\"");
    assert_eq!(fired.level, Level::DEBUG);
    let set_at = format!("tests/tracing.rs:{line}:19");
    assert_eq!(
        fired.fields,
        fields(&[
            ("at", "1.0"),
            ("scope", "scope \"db-query\""),
            ("cause.kind", "timeout"),
            ("cause.root", "timeout"),
            (
                "cause",
                &format!("scope \"db-query\" timed out after 1s (deadline set at {set_at})"),
            ),
            ("cause.location", &set_at),
        ])
    );
}

#[test]
fn a_sibling_failure_is_a_warning_and_the_siblings_cancellation_names_it() {
    let events = captured(|| async {
        let result = NurseryBuilder::named("pool")
            .run(async |n: Nursery<'_, BoxError>| {
                n.start_soon_named("fetch", async {
                    wherefore::sleep(secs(1)).await?;
                    Err::<(), BoxError>("connection refused".into())
                })
                .unwrap();
                n.start_soon_named("render", async {
                    wherefore::sleep(secs(60)).await?;
                    Ok(())
                })
                .unwrap();
                Ok(())
            })
            .await;
        assert!(result.is_err());
    });
    let failed = the(&events, "task exited", "exit", "failed");
    assert_eq!(failed.level, Level::WARN);
    assert_eq!(failed.fields["task"], "task \"fetch\"");
    assert_eq!(failed.fields["error"], "connection refused");

    let seen = the(
        &events,
        "cancellation observed",
        "cause.kind",
        "sibling-error",
    );
    assert_eq!(seen.level, Level::DEBUG);
    assert_eq!(seen.fields["scope"], "scope \"pool\"");
    assert_eq!(seen.fields["point"], "sleep");
    assert!(
        seen.fields["cause"].starts_with("sibling task \"fetch\" (spawned at tests/tracing.rs:"),
        "{seen:?}"
    );
    assert!(seen.fields["cause"].ends_with(") failed: connection refused"));
    assert!(seen.fields["cause.location"].starts_with("tests/tracing.rs:"));
    assert!(!seen.fields.contains_key("tag"), "no tag: {seen:?}");
    // It happened in the span of the member that observed it, inside the nursery's.
    assert_eq!(seen.spans.len(), 2, "{seen:?}");
    assert!(seen.spans[0].starts_with("scope{\"scope\": \"scope \\\"pool\\\"\""));
    assert!(seen.spans[1].starts_with("task{\"spawned_at\": \"tests/tracing.rs:"));
    assert!(
        seen.spans[1].contains("\"task\": \"task \\\"render\\\"\""),
        "{seen:?}"
    );
}

#[test]
fn a_cancellation_through_a_parent_carries_the_roots_kind_location_and_tag() {
    let line = line!() + 6;
    let events = captured(|| async {
        let outer = Scope::named("service");
        let stop = outer.handle();
        let _ = outer
            .run(async {
                stop.cancel_with("SIGTERM");
                Scope::named("request").run(wherefore::checkpoint()).await?;
                Ok::<_, Cancelled>(())
            })
            .await;
    });
    let requested = the(&events, "cancel requested", "scope", "scope \"service\"");
    assert_eq!(requested.level, Level::DEBUG);
    let at = format!("tests/tracing.rs:{line}:22");
    assert_eq!(
        requested.fields,
        fields(&[
            ("at", "0.0"),
            ("scope", "scope \"service\""),
            ("cause.kind", "explicit"),
            ("cause.root", "explicit"),
            ("cause", &format!("explicit (\"SIGTERM\") at {at}")),
            ("cause.location", &at),
            ("tag", "\"SIGTERM\""),
        ])
    );
    let seen = the(
        &events,
        "cancellation observed",
        "scope",
        "scope \"request\"",
    );
    assert_eq!(
        seen.fields,
        fields(&[
            ("at", "0.0"),
            ("task", "task#2"), // the runtime's main task
            ("scope", "scope \"request\""),
            ("point", "checkpoint"),
            ("cause.kind", "parent"),
            ("cause.root", "explicit"),
            (
                "cause",
                &format!("parent scope \"service\" was cancelled: explicit (\"SIGTERM\") at {at}"),
            ),
            ("cause.location", &at),
            ("tag", "\"SIGTERM\""),
        ])
    );
}

#[test]
fn a_group_shutdown_is_one_info_event_naming_the_dropped_member() {
    let events = captured(|| async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon_named("stubborn", async {
                wherefore::shield(std::future::pending::<()>()).await;
                Ok(())
            })
            .unwrap();
            jobs.start_soon_named("polite", wherefore::sleep(secs(3600)))
                .unwrap();
            wherefore::checkpoint().await?;
            let report = jobs.shutdown(Duration::from_secs(2)).await;
            assert_eq!(report.dropped().len(), 1);
            Ok(())
        })
        .await
        .unwrap();
    });
    let done = the(&events, "group finished", "group", "scope \"jobs\"");
    assert_eq!(done.level, Level::INFO);
    assert_eq!(done.fields["finished"], "0");
    assert_eq!(done.fields["failed"], "0");
    assert_eq!(done.fields["cancelled"], "1");
    assert_eq!(done.fields["dropped"], "1");
    assert_eq!(done.fields["dropped_tasks"], "task \"stubborn\"");
    assert!(done.fields["cause"].starts_with("explicit (\"shutdown\") at "));
    assert_eq!(done.fields["at"], "2.0");
    let dropped = the(&events, "task exited", "exit", "dropped");
    assert_eq!(dropped.level, Level::WARN);
    assert_eq!(dropped.fields["task"], "task \"stubborn\"");
}

#[test]
fn a_members_span_is_a_child_of_the_request_span_it_was_spawned_in() {
    let events = captured(|| async {
        let request = tracing::info_span!("request", id = 7);
        async {
            wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let mut backend = n
                    .spawn_named("backend", wherefore::sleep(secs(60)))
                    .unwrap();
                wherefore::sleep(secs(1)).await?;
                backend.cancel_with("too slow");
                backend.join().await?;
                Ok(())
            })
            .await
            .unwrap();
        }
        .instrument(request)
        .await;
    });
    let seen = the(&events, "cancellation observed", "point", "sleep");
    assert_eq!(seen.fields["tag"], "\"too slow\"");
    assert_eq!(seen.spans.len(), 2, "{seen:?}");
    assert_eq!(seen.spans[0], "request{\"id\": \"7\"}");
    assert!(seen.spans[1].starts_with("task{"), "{seen:?}");
    assert!(seen.spans[1].contains("\"task\": \"task \\\"backend\\\"\""));
    let exited = the(&events, "task exited", "exit", "cancelled");
    assert_eq!(exited.level, Level::DEBUG);
    assert_eq!(exited.fields["task"], "task \"backend\"");
    assert_eq!(
        exited.spans,
        ["request{\"id\": \"7\"}"],
        "reported by the nursery"
    );
}

#[test]
fn nothing_reaches_a_subscriber_that_listens_to_nothing_of_wherefore() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(Targets::new().with_target("wherefore", LevelFilter::OFF)),
    );
    tracing::subscriber::with_default(subscriber, || {
        wherefore::testing::block_on(async {
            let _ = wherefore::move_on_after(secs(1), wherefore::sleep(secs(5))).await;
        });
    });
    assert!(capture.0.lock().unwrap().is_empty());
}
