package bench;

import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * The processor's temperature job, written the way a Kafka Streams user would: each JSON
 * reading, keyed by sensor, updates that sensor's window of the last 10 temperatures in a
 * changelogged key-value store (in memory, with Kafka Streams' default record cache in front
 * of it); an alert for a reading above 40 °C and an average for each full window go to the
 * output topic as JSON, with an {@code event-type} header, as the processor writes them.
 *
 * <p>Arguments: bootstrap servers, input topic, output topic, application id,
 * {@code exactly_once} or {@code at_least_once}. Prints {@code RUNNING} when the application
 * is running (partitions assigned, state restored).
 */
public final class TemperatureStreams {
  static final int WINDOW = 10;
  static final double THRESHOLD = 40.0;
  static final ObjectMapper JSON =
      new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

  /** A reading of the message contract (version 1). */
  public record Reading(String sensor_id, long seq, double temperature, String timestamp) {}

  @JsonPropertyOrder({"type", "sensor_id", "seq", "temperature", "threshold", "timestamp"})
  public record Alert(
      String type, String sensor_id, long seq, double temperature, double threshold,
      String timestamp) {}

  @JsonPropertyOrder({"type", "sensor_id", "seq", "average", "window_size", "timestamp"})
  public record Average(
      String type, String sensor_id, long seq, double average, int window_size,
      String timestamp) {}

  /** A window: the last temperatures, oldest first, as length-prefixed doubles. */
  static final class WindowSerde implements Serde<double[]> {
    @Override
    public Serializer<double[]> serializer() {
      return (topic, window) -> {
        ByteBuffer buffer = ByteBuffer.allocate(4 + 8 * window.length);
        buffer.putInt(window.length);
        for (double value : window) {
          buffer.putDouble(value);
        }
        return buffer.array();
      };
    }

    @Override
    public Deserializer<double[]> deserializer() {
      return (topic, bytes) -> {
        if (bytes == null) {
          return null;
        }
        ByteBuffer buffer = ByteBuffer.wrap(bytes);
        double[] window = new double[buffer.getInt()];
        for (int i = 0; i < window.length; i++) {
          window[i] = buffer.getDouble();
        }
        return window;
      };
    }
  }

  static final class WindowProcessor implements Processor<String, byte[], String, byte[]> {
    private ProcessorContext<String, byte[]> context;
    private KeyValueStore<String, double[]> windows;

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.windows = context.getStateStore("windows");
    }

    @Override
    public void process(Record<String, byte[]> record) {
      Reading reading;
      try {
        reading = JSON.readValue(record.value(), Reading.class);
      } catch (IOException | RuntimeException e) {
        return; // the benchmark's input has no unusable record
      }
      String sensor = reading.sensor_id() != null ? reading.sensor_id() : record.key();
      double[] before = windows.get(sensor);
      double[] window;
      if (before == null) {
        window = new double[] {reading.temperature()};
      } else if (before.length < WINDOW) {
        window = java.util.Arrays.copyOf(before, before.length + 1);
        window[before.length] = reading.temperature();
      } else {
        window = new double[WINDOW];
        System.arraycopy(before, 1, window, 0, WINDOW - 1);
        window[WINDOW - 1] = reading.temperature();
      }
      windows.put(sensor, window);
      try {
        if (reading.temperature() > THRESHOLD) {
          emit(record, sensor, "alert", new Alert("alert", sensor, reading.seq(),
              reading.temperature(), THRESHOLD, reading.timestamp()));
        }
        if (window.length == WINDOW) {
          double sum = 0;
          for (double value : window) {
            sum += value;
          }
          emit(record, sensor, "average", new Average("average", sensor, reading.seq(),
              sum / WINDOW, WINDOW, reading.timestamp()));
        }
      } catch (IOException e) {
        throw new IllegalStateException("encoding an event", e);
      }
    }

    private void emit(Record<String, byte[]> input, String sensor, String kind, Object event)
        throws IOException {
      RecordHeaders headers = new RecordHeaders();
      headers.add("event-type", kind.getBytes(StandardCharsets.UTF_8));
      context.forward(
          new Record<>(sensor, JSON.writeValueAsBytes(event), input.timestamp(), headers));
    }
  }

  public static void main(String[] args) throws Exception {
    Launch.checkArguments("TemperatureStreams", args);
    Properties props = Launch.properties(args);

    StoreBuilder<KeyValueStore<String, double[]>> store =
        Stores.keyValueStoreBuilder(
                Stores.inMemoryKeyValueStore("windows"), Serdes.String(), new WindowSerde())
            .withCachingEnabled();
    Topology topology = new Topology();
    topology.addSource("readings", Serdes.String().deserializer(),
        Serdes.ByteArray().deserializer(), args[1]);
    topology.addProcessor("window", WindowProcessor::new, "readings");
    topology.addStateStore(store, "window");
    topology.addSink("events", args[2], Serdes.String().serializer(),
        Serdes.ByteArray().serializer(), "window");

    Launch.run(topology, props);
  }
}
