//! Giving a client its bootstrap servers back when it has lost every broker.
//!
//! librdkafka 2.10 and later drop the brokers a metadata response does not list, and the
//! bootstrap entries once the cluster is known. A broker that is shutting down answers
//! metadata requests with an empty broker list: a client that asks it at that moment
//! (a producer after "not leader for partition", say) drops the only broker it knows, reports
//! "1/1 brokers are down", and from then on skips every metadata refresh for want of a usable
//! broker. The re-bootstrap meant to recover from this does not always run (librdkafka issue
//! #5301, fix not released as of 2.12.1): the producer then delivers nothing, for good, while
//! the broker is back up. The chaos tests caught it about once in 15 graceful broker restarts.
//!
//! [`Rebootstrap`] is the workaround: when a client reports all brokers down, it adds the
//! bootstrap servers back (`rd_kafka_brokers_add`, which rust-rdkafka does not wrap). Adding a
//! server the client still has as a bootstrap entry is a no-op; one it dropped comes back, connects, and the
//! client's next metadata refresh goes through it. A client that still knows its brokers loses
//! nothing: librdkafka prefers learned brokers over bootstrap ones and drops the bootstrap
//! entries again once a metadata response lists the cluster.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, FutureProducer, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafka;

/// One client's way back to its bootstrap servers; see the module documentation. It belongs
/// to the client's context, which [`create`] binds to the client it makes. A clone is a new,
/// unbound one: a context cloned before its client is created keeps no handle to that client.
#[derive(Debug, Default)]
pub struct Rebootstrap {
    bound: Arc<OnceLock<Bound>>,
}

impl Clone for Rebootstrap {
    fn clone(&self) -> Self {
        Self::default()
    }
}

#[derive(Debug)]
struct Bound {
    client: NonNull<RDKafka>,
    servers: CString,
    /// When the servers were last added back: librdkafka keeps every list it is given (and
    /// adds them all again at each of its own re-bootstraps), and reports "all brokers down"
    /// again and again while a broker restarts, so the servers go back at most once per
    /// [`ADD_BACK_EVERY`].
    added: Mutex<Option<Instant>>,
}

/// The least time between two additions of a client's bootstrap servers.
const ADD_BACK_EVERY: Duration = Duration::from_secs(5);

// SAFETY: the handle is only used by `Rebootstrap::after`, from the client's own callbacks,
// and librdkafka's `rd_kafka_brokers_add` may be called from any thread.
#[allow(unsafe_code)]
unsafe impl Send for Bound {}
// SAFETY: as for `Send`; the handle and the servers are never changed once set, and the time of
// the last addition is behind a mutex.
#[allow(unsafe_code)]
unsafe impl Sync for Bound {}

impl Rebootstrap {
    /// To be called from the context's `error` callback with each client error: on "all
    /// brokers down", adds the bootstrap servers back (at most once per [`ADD_BACK_EVERY`]).
    /// Returns whether it did.
    pub fn after(&self, error: &KafkaError) -> bool {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            return false;
        }
        let Some(bound) = self.bound.get() else {
            return false;
        };
        {
            let mut added = bound
                .added
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            if added.is_some_and(|at| now.duration_since(at) < ADD_BACK_EVERY) {
                return false;
            }
            *added = Some(now);
        }
        // SAFETY: only the context that owns this holds `bound` (`create` keeps a weak
        // reference, and a clone of this is unbound), and the context lives inside its client:
        // while it can be called, the client's handle is live. The server list is a C string
        // that librdkafka copies.
        #[allow(unsafe_code)]
        let added = unsafe {
            rdkafka::bindings::rd_kafka_brokers_add(bound.client.as_ptr(), bound.servers.as_ptr())
        };
        tracing::info!(
            target: "librdkafka",
            servers = %bound.servers.to_string_lossy(),
            added,
            "all brokers down: bootstrap servers added back"
        );
        true
    }

    fn binder(&self) -> Weak<OnceLock<Bound>> {
        Arc::downgrade(&self.bound)
    }
}

/// A client context that can find its way back to the bootstrap servers.
pub trait Rebootstraps: ClientContext {
    /// This client's [`Rebootstrap`], whose [`Rebootstrap::after`] the context's `error`
    /// callback calls.
    fn rebootstrap(&self) -> &Rebootstrap;
}

/// A producer or consumer: the handle librdkafka knows it by.
pub trait NativeHandle {
    /// The client's librdkafka handle.
    fn native_handle(&self) -> *mut RDKafka;
}

/// Implements [`NativeHandle`] for client types, each with the context bound rust-rdkafka's
/// `client()` needs on it.
macro_rules! native_handle {
    ($($client:ident: $context:ident),* $(,)?) => {$(
        impl<C: $context + 'static> NativeHandle for $client<C> {
            fn native_handle(&self) -> *mut RDKafka {
                self.client().native_ptr()
            }
        }
    )*};
}

native_handle!(
    BaseProducer: ProducerContext,
    ThreadedProducer: ProducerContext,
    FutureProducer: ClientContext,
    BaseConsumer: ConsumerContext,
    StreamConsumer: ConsumerContext,
);

/// Creates a client from `config` with `context`, bound to its bootstrap servers (see
/// [`Rebootstrap`]). Use it instead of `ClientConfig::create_with_context` for every client
/// that lives longer than a broker restart.
pub fn create<C, T>(config: &ClientConfig, context: C) -> KafkaResult<T>
where
    C: Rebootstraps,
    T: FromClientConfigAndContext<C> + NativeHandle,
{
    let binder = context.rebootstrap().binder();
    let client: T = config.create_with_context(context)?;
    let servers = config
        .get("bootstrap.servers")
        .and_then(|servers| CString::new(servers).ok());
    if let (Some(slot), Some(native), Some(servers)) = (
        binder.upgrade(),
        NonNull::new(client.native_handle()),
        servers,
    ) {
        let _ = slot.set(Bound {
            client: native,
            servers,
            added: Mutex::new(None),
        });
    }
    Ok(client)
}

/// [`create`] as a method of `ClientConfig`, for builder chains.
pub trait CreateRebootstrapping {
    /// See [`create`].
    fn create_rebootstrapping<C, T>(&self, context: C) -> KafkaResult<T>
    where
        C: Rebootstraps,
        T: FromClientConfigAndContext<C> + NativeHandle;
}

impl CreateRebootstrapping for ClientConfig {
    fn create_rebootstrapping<C, T>(&self, context: C) -> KafkaResult<T>
    where
        C: Rebootstraps,
        T: FromClientConfigAndContext<C> + NativeHandle,
    {
        create(self, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::TracingContext;

    fn consumer() -> BaseConsumer<TracingContext> {
        // Nothing listens on port 1: the client never connects, which these tests do not need.
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create_rebootstrapping(TracingContext::default())
            .expect("a consumer")
    }

    #[test]
    fn all_brokers_down_gives_the_client_its_bootstrap_servers_back() {
        let consumer = consumer();
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert!(consumer.context().rebootstrap().after(&down));
        // Reported again while the broker is still away: not again so soon.
        assert!(!consumer.context().rebootstrap().after(&down));
    }

    #[test]
    fn other_errors_and_unbound_contexts_add_nothing() {
        let consumer = consumer();
        let context = consumer.context();
        for error in [
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            KafkaError::Global(RDKafkaErrorCode::Fatal),
        ] {
            assert!(!context.rebootstrap().after(&error));
        }
        // A clone of a bound context is bound to no client: it cannot reach this one's handle.
        let clone = context.as_ref().clone();
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert!(!clone.rebootstrap().after(&down));
        assert!(!TracingContext::default().rebootstrap().after(&down));
    }
}
