package bench;

import java.io.IOException;
import java.nio.file.Files;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;

/**
 * What the baselines share: their arguments (bootstrap servers, input topic, output topic,
 * application id, {@code exactly_once} or {@code at_least_once}), their settings, and running a
 * topology until SIGTERM, printing each state ({@code RUNNING} once partitions are assigned and
 * state restored).
 */
final class Launch {
  private Launch() {}

  /** Exits with a usage message unless there are five arguments. */
  static void checkArguments(String name, String[] args) {
    if (args.length != 5) {
      System.err.println(
          "usage: " + name + " BOOTSTRAP INPUT OUTPUT APPLICATION_ID GUARANTEE");
      System.exit(2);
    }
  }

  /**
   * The settings: the processors' 100 ms commit interval and lz4 compression, a fresh state
   * directory.
   */
  static Properties properties(String[] args) throws IOException {
    String guarantee = switch (args[4]) {
      case "exactly_once" -> StreamsConfig.EXACTLY_ONCE_V2;
      case "at_least_once" -> StreamsConfig.AT_LEAST_ONCE;
      default -> throw new IllegalArgumentException("guarantee: " + args[4]);
    };
    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    // The services commit every 100 ms in both guarantees; so does this (Kafka Streams'
    // default is 100 ms under exactly_once_v2, 30 s under at_least_once).
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
    props.put(StreamsConfig.STATE_DIR_CONFIG,
        Files.createTempDirectory("bench-streams").toString());
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // The services compress what they produce with lz4 (the producer's default is none): the
    // same work on both sides, and the same bytes for the broker to write.
    props.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
    return props;
  }

  /** Runs `topology` until the process is told to stop. */
  static void run(Topology topology, Properties props) throws InterruptedException {
    KafkaStreams streams = new KafkaStreams(topology, props);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println(now);
      System.out.flush();
      if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
        stopped.countDown();
      }
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      try {
        stopped.await();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }));
    streams.start();
    stopped.await();
  }
}
