package bench;

import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The ip-counter job written the way a Kafka Streams user would: each access-log line's
 * addresses ({@code flatMap}), re-keyed by address through a repartition topic
 * ({@code groupByKey}), counted per tumbling minute of event time with 10 s of grace
 * ({@code windowedBy} + {@code count}), and written once per window when it closes
 * ({@code suppress(untilWindowCloses)}), as {@code address@windowStartMs -> count}.
 *
 * <p>Event time is the line's own {@code [dd/Mon/yyyy:HH:mm:ss +zzzz]} field (the first
 * bracketed field that is a time), else the record's timestamp. Addresses follow the same rules
 * as the Rust job's {@code ip_count::extract} closely enough for a benchmark: standalone runs of
 * hex digits, dots and colons that are an IPv4 address (decimal octets, no leading zeros) or an
 * IPv6 one, a product version ({@code Chrome/120.0.0.0}) skipped. Unusable lines are dropped (the
 * Rust job dead-letters them).
 *
 * <p>Arguments: bootstrap servers, input topic, output topic, application id,
 * {@code exactly_once} or {@code at_least_once}. Prints {@code RUNNING} when running.
 */
public final class LogStreams {
  static final Duration WINDOW = Duration.ofSeconds(60);
  static final Duration GRACE = Duration.ofSeconds(10);
  static final DateTimeFormatter COMBINED =
      DateTimeFormatter.ofPattern("dd/MMM/yyyy:HH:mm:ss Z", Locale.ENGLISH);

  /** The line's bracketed time, or null. */
  static String bracketedTime(String line) {
    int from = 0;
    while (true) {
      int start = line.indexOf('[', from);
      if (start < 0) {
        return null;
      }
      int end = line.indexOf(']', start + 1);
      if (end < 0) {
        return null;
      }
      if (end - start > 3 && line.charAt(start + 3) == '/') {
        return line.substring(start + 1, end);
      }
      from = end + 1;
    }
  }

  static String decode(byte[] value) {
    if (value == null || value.length == 0) {
      return null;
    }
    try {
      return StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .decode(java.nio.ByteBuffer.wrap(value))
          .toString();
    } catch (CharacterCodingException e) {
      return null;
    }
  }

  /** Event time: the line's own time, else the record's. */
  public static final class LineTime implements TimestampExtractor {
    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
      String line = decode((byte[]) record.value());
      String stamp = line == null ? null : bracketedTime(line);
      if (stamp != null) {
        try {
          return OffsetDateTime.parse(stamp, COMBINED).toInstant().toEpochMilli();
        } catch (DateTimeParseException e) {
          return -1; // dropped, as the Rust job dead-letters a bad timestamp
        }
      }
      return record.timestamp();
    }
  }

  static boolean runChar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
        || c == '.' || c == ':';
  }

  static boolean wordChar(char c) {
    return Character.isLetterOrDigit(c) || c == '_' || c == '%';
  }

  static String ipv4(String text) {
    String[] parts = text.split("\\.", -1);
    if (parts.length != 4) {
      return null;
    }
    for (String part : parts) {
      if (part.isEmpty() || part.length() > 3 || (part.length() > 1 && part.charAt(0) == '0')) {
        return null;
      }
      for (int i = 0; i < part.length(); i++) {
        if (!Character.isDigit(part.charAt(i))) {
          return null;
        }
      }
      if (Integer.parseInt(part) > 255) {
        return null;
      }
    }
    return text;
  }

  static String ipv6(String text) {
    if (text.chars().filter(c -> c == ':').count() < 2 || text.indexOf('.') >= 0) {
      return null;
    }
    int gap = text.indexOf("::");
    if (gap >= 0 && text.indexOf("::", gap + 1) >= 0) {
      return null;
    }
    int groups = 0;
    for (String group : text.split(":", -1)) {
      if (group.isEmpty()) {
        continue;
      }
      if (group.length() > 4) {
        return null;
      }
      groups++;
    }
    if (gap < 0 ? groups != 8 : groups > 7) {
      return null;
    }
    return text.toLowerCase(Locale.ROOT);
  }

  static String address(String run) {
    String found = ipv4(run);
    if (found == null) {
      found = ipv6(run);
    }
    if (found == null && (run.endsWith(".") || run.endsWith(":"))) {
      String trimmed = run.substring(0, run.length() - 1);
      found = ipv4(trimmed);
      if (found == null) {
        found = ipv6(trimmed);
      }
    }
    return found;
  }

  /** Every address in the line, in order. */
  static List<String> addresses(String line) {
    List<String> found = new ArrayList<>(2);
    int i = 0;
    int n = line.length();
    while (i < n) {
      if (!runChar(line.charAt(i))) {
        i++;
        continue;
      }
      int start = i;
      while (i < n && runChar(line.charAt(i))) {
        i++;
      }
      boolean alone = (start == 0 || !wordChar(line.charAt(start - 1)))
          && (i == n || !wordChar(line.charAt(i)));
      boolean version = start >= 2 && line.charAt(start - 1) == '/'
          && Character.isLetterOrDigit(line.charAt(start - 2));
      if (alone && !version) {
        String address = address(line.substring(start, i));
        if (address != null) {
          found.add(address);
        }
      }
    }
    return found;
  }

  public static void main(String[] args) throws Exception {
    Launch.checkArguments("LogStreams", args);
    Properties props = Launch.properties(args);

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(args[1], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray())
            .withTimestampExtractor(new LineTime()))
        .flatMap((key, value) -> {
          String line = decode(value);
          List<KeyValue<String, byte[]>> out = new ArrayList<>(2);
          if (line != null) {
            for (String address : addresses(line)) {
              out.add(KeyValue.pair(address, new byte[0]));
            }
          }
          return out;
        })
        .groupByKey(Grouped.<String, byte[]>with("requests", Serdes.String(), Serdes.ByteArray()))
        .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
        .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("counts")
            .withKeySerde(Serdes.String())
            .withValueSerde(Serdes.Long()))
        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
        .toStream()
        .map((window, count) ->
            KeyValue.pair(window.key() + "@" + window.window().start(), count.toString()))
        .to(args[2], Produced.with(Serdes.String(), Serdes.String()));

    Launch.run(builder.build(), props);
  }
}
