//! Running a job: the clients, the changelog topic, transactions, the HTTP endpoints, then the
//! batch loop until shutdown, then a clean stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pipeline_runtime::endpoints::{self, Health};
use pipeline_runtime::kafka::wait_for_topics;
use pipeline_runtime::rebootstrap::CreateRebootstrapping;
use pipeline_runtime::settings::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::changelog::{self, RestoreTarget};
use crate::clients::{consumer_config, producer_config};
use crate::context::EngineContext;
use crate::deliveries::{Deliveries, EngineProducer};
use crate::restore::Restores;
use crate::transactions::Transactions;
use crate::worker::{Commit, Worker};
use crate::{EngineSettings, Guarantee, Job};

/// Runs `job` until `shutdown` fires, then commits what it has processed, leaves the group
/// and returns. Returns an error when it cannot go on safely (an output not delivered in
/// `at_least_once`, a fenced producer in `exactly_once`): its supervisor restarts it, and the
/// uncommitted input is processed again.
pub async fn run<J: Job>(
    job: J,
    kafka: &KafkaSettings,
    settings: &EngineSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::default());
    let tasks = TaskTracker::new();
    // Stops the endpoints when the job ends for any reason, shutdown or error.
    let stop = shutdown.child_token();
    // Every event of the job's own task names its client: a process running two stages (the
    // IP counter's) logs both, and its log must say which one an event is from.
    let result = run_job(job, kafka, settings, &shutdown, &health, &tasks, &stop)
        .instrument(tracing::info_span!("job", client = %settings.client_id()))
        .await;
    health.set_ready(false);
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    tracing::info!("{} stopped", settings.client_name);
    result
}

async fn run_job<J: Job>(
    job: J,
    kafka: &KafkaSettings,
    settings: &EngineSettings,
    shutdown: &CancellationToken,
    health: &Arc<Health>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    // The recorder is installed by `serve`: metrics registered before it would be lost.
    endpoints::serve(
        &settings.http_address,
        settings.http_address_file.as_deref(),
        health.clone(),
        stop.clone(),
        tasks,
    )
    .await?;
    settings.metrics.describe();
    let context = EngineContext::new(health.clone(), settings.metrics);
    let consumer: StreamConsumer<EngineContext> = consumer_config(kafka, settings)?
        .create_rebootstrapping(context.clone())
        .context("creating the Kafka consumer")?;
    let producer: Arc<EngineProducer> = Arc::new(
        producer_config(kafka, settings)?
            .create_rebootstrapping(Deliveries::default())
            .context("creating the Kafka producer")?,
    );
    tracing::info!(
        brokers = %kafka.brokers,
        group_id = %settings.group_id,
        input_topic = %settings.input_topic,
        output_topics = ?settings.output_topics,
        dlq_topic = %settings.dlq_topic,
        state_topic = J::STATEFUL.then_some(settings.state_topic.as_str()),
        guarantee = ?settings.guarantee,
        client_id = %settings.client_id(),
        "{} starting",
        settings.client_name
    );
    let mut topics = vec![settings.input_topic.as_str(), settings.dlq_topic.as_str()];
    topics.extend(settings.output_topics.iter().map(String::as_str));
    let Some(layout) = wait_for_topics(consumer.client(), &topics, shutdown).await? else {
        return Ok(());
    };
    if J::STATEFUL {
        // From the answer that showed the input with its partitions (see `wait_for_topics`).
        let input_partitions = layout
            .topics
            .iter()
            .find(|(name, _)| *name == settings.input_topic)
            .map_or(0, |(_, partitions)| partitions.len());
        changelog::ensure_topic(kafka, &settings.state_topic, input_partitions as i32).await?;
    }
    let commit = match settings.guarantee {
        Guarantee::ExactlyOnce => {
            let transactions = Transactions::new(producer.clone(), &settings.transactional_id())
                .context("starting the transactional producer's watchdog thread")?;
            if !transactions.init(shutdown).await? {
                return Ok(());
            }
            Commit::ExactlyOnce(transactions)
        }
        Guarantee::AtLeastOnce => Commit::AtLeastOnce,
    };
    consumer
        .subscribe(&[settings.input_topic.as_str()])
        .context("subscribing to the input topic")?;

    let target = RestoreTarget {
        state_topic: settings.state_topic.clone(),
        input_topic: settings.input_topic.clone(),
        group_id: settings.group_id.clone(),
        partition: 0,
        // Long enough for an abandoned transaction to be aborted by the broker.
        catch_up_timeout: settings.transaction_timeout + Duration::from_secs(30),
        transactional: settings.guarantee == Guarantee::ExactlyOnce,
    };
    let restores = Restores::new(kafka.clone(), target, shutdown);
    let mut worker = Worker::new(
        settings,
        kafka,
        &consumer,
        &context,
        producer,
        commit,
        job,
        restores,
        health.clone(),
    );
    let result = worker.run(shutdown).await;
    health.set_ready(false);
    worker.shut_down().await;
    // The producer in use: a new one if the first was lost.
    let producer = worker.producer();
    drop(worker);
    if settings.guarantee == Guarantee::AtLeastOnce {
        final_commit(&consumer).await;
    }
    consumer.unsubscribe();
    drop(consumer);
    let _ = producer.flush(Timeout::After(Duration::from_secs(10)));
    result
}

/// Commits the stored offsets before leaving the group (`at_least_once`). A rebalance under
/// way (several replicas stopping at once) makes the commit fail until the consumer has served
/// it, so it is retried while polling for up to five seconds. Records polled meanwhile are not
/// processed and their offsets are not stored: the next owner processes them.
async fn final_commit(consumer: &StreamConsumer<EngineContext>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => return,
            Err(KafkaError::ConsumerCommit(
                code
                @ (RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration),
            )) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(?code, "final commit waits for the rebalance");
                let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
            }
            Err(error) => {
                tracing::warn!(%error, "final offset commit failed; the next owner may repeat some outputs");
                return;
            }
        }
    }
}
