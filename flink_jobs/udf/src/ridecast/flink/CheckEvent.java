package ridecast.flink;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.metrics.Counter;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The trip-event contract's checks in one pass over the message: {@code ridecast_check(payload, now_ms, rules)}.
 *
 * <p>Why Java: the same checks written in Flink SQL cost about 20 µs per event (a VARIANT parse, a JSON text per
 * field, a typed value per field and a 40-branch CASE, each a generated expression), more than reading the
 * message from Kafka and windowing it together. One streaming JSON parse with the checks beside it costs a
 * few µs.
 *
 * <p>This class holds no contract of its own: the field list, reasons, zones and limits arrive as the JSON
 * literal {@code rules}, rendered by {@code flink_jobs/sql.py} from {@code ridecast.events}, and the checks run
 * in the order of {@code ridecast.events.reject_reason}, the Python oracle that {@code tests/test_job_contract.py}
 * holds this class to message by message. The agreement of the source's event time with the parsed one is checked
 * in SQL, after this call (the source reads it with {@link EventTimeInText}).
 *
 * <p>Returns the reason (null when valid), every field's typed value where its JSON kind is right, valid or
 * not (dead letters and bronze keep the event id of a rejected event when it has one), and the message as a
 * string.
 */
public class CheckEvent extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    private static final String ROW = "ROW<reason STRING, event_id STRING, event_time_ms BIGINT, "
            + "event_type STRING, pickup_zone STRING, dropoff_zone STRING, fare DOUBLE, wait_seconds DOUBLE, "
            + "surge DOUBLE, payload STRING>";
    /** The output row's value columns, in order (after reason); each must be a field of the rules. */
    private static final String[] OUTPUT = {"event_id", "event_time_ms", "event_type", "pickup_zone",
        "dropoff_zone", "fare", "wait_seconds", "surge"};
    private static final double TWO_63 = 9.223372036854775808E18;

    private transient JsonFactory json;
    private transient String rulesText;  // the literal the rules were read from (the same object every call)
    private transient Rules rules;
    private transient Counter checkerErrors;  // Flink metric; null when called outside a job (tests/java)

    @Override
    public void open(FunctionContext context) throws Exception {
        checkerErrors = context.getMetricGroup().counter("ridecast_checker_errors");
    }

    /**
     * The message arrives as the bytes Kafka delivered. Plain ASCII, the usual case, is parsed as bytes: decoding
     * it to a Java String first cost more than the parse. Anything else is parsed from its text decoded with
     * invalid bytes replaced, as {@code events.parse_message} does: Jackson's byte parser judges invalid UTF-8
     * differently (a bad byte inside a key does not stop it). tests/test_udf.py holds both paths to the oracle.
     */
    @DataTypeHint(value = ROW, bridgedTo = RowData.class)
    public RowData eval(byte[] bytes, Long nowMs, String rulesJson) {
        if (bytes == null || nowMs == null || rulesJson == null) {
            return null;
        }
        Rules r = rules(rulesJson);
        Object[] values = new Object[r.kinds.length];
        boolean ascii = isAscii(bytes);
        String text = ascii ? null : new String(bytes, StandardCharsets.UTF_8);  // invalid bytes replaced
        String reason;
        try {
            if (bytes.length > r.maxPayloadBytes) {
                reason = r.tooLarge;  // never parsed
            } else if (!oneObject(bytes)) {
                reason = r.invalidJson;
            } else if (ascii) {
                reason = parse(bytes, null, r, values);
            } else {
                reason = parse(null, text, r, values);
            }
            if (reason == null) {
                reason = check(values, r, nowMs);
            }
        } catch (RuntimeException e) {
            // A bug of this class (or rules that do not fit it), never a fault of the message: its own reason, so
            // valid events dead-lettered by it are visible and counted instead of passing for bad JSON.
            reason = r.checkerError;
            java.util.Arrays.fill(values, null);
            if (checkerErrors != null) {
                checkerErrors.inc();
            }
        }
        for (int i = 0; i < values.length; i++) {
            if (values[i] == WRONG_KIND) {  // whatever the reason, including a parse that failed halfway
                values[i] = null;
            }
        }
        GenericRowData row = new GenericRowData(2 + OUTPUT.length);
        row.setField(0, reason == null ? null : utf8(reason));
        for (int i = 0; i < OUTPUT.length; i++) {
            Object v = values[r.output[i]];
            row.setField(1 + i, v instanceof String ? utf8((String) v) : v);
        }
        // The message as Flink's string over the same bytes when they are ASCII (nearly every message; measured
        // against a STRING source column in paired runs). Otherwise decoded with invalid bytes replaced, as the
        // parse saw it: Iceberg's Parquet writer stores a string's bytes as they are, and a STRING column must
        // hold valid UTF-8 for its readers.
        row.setField(1 + OUTPUT.length, ascii ? StringData.fromBytes(bytes) : utf8(text));
        return row;
    }

    private static boolean isAscii(byte[] b) {
        for (byte x : b) {
            if (x < 0) {
                return false;
            }
        }
        return true;
    }

    /** Encoded now, by the JDK: a lazily encoded StringData is encoded later, char by char, by every copy. */
    private static StringData utf8(String s) {
        return StringData.fromBytes(s.getBytes(StandardCharsets.UTF_8));
    }

    private Rules rules(String rulesJson) {
        if (rulesJson != rulesText && !rulesJson.equals(rulesText)) {
            rules = Rules.read(rulesJson);
            rulesText = rulesJson;
            json = new JsonFactory();
        }
        return rules;
    }

    private static boolean isSpace(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
    }

    /**
     * The message is one JSON object, as {@code events.parse_message} decides: it starts with "{" and ends with "}"
     * (JSON whitespace aside), and no "}" is followed by "{" (two events glued together; also refused inside a
     * string). The parser alone would read the first value and ignore the rest.
     */
    static boolean oneObject(byte[] s) {  // UTF-8: every byte tested here is ASCII, never part of a multi-byte char
        int n = s.length;
        int i = 0;
        while (i < n && isSpace((char) s[i])) {
            i++;
        }
        int j = n - 1;
        while (j >= 0 && isSpace((char) s[j])) {
            j--;
        }
        if (i >= n || s[i] != '{' || s[j] != '}') {
            return false;
        }
        for (int k = i; k < j; k++) {
            if (s[k] == '}') {
                int m = k + 1;
                while (m < n && isSpace((char) s[m])) {
                    m++;
                }
                if (m < n && s[m] == '{') {
                    return false;
                }
            }
        }
        return true;
    }

    /** Reads the top-level fields of the rules into {@code values} (the last of duplicate keys wins, as in Python's
     * json); returns the reason when the message is not JSON, else null. Values of the wrong kind are left as
     * {@link #WRONG_KIND}. */
    private String parse(byte[] bytes, String text, Rules r, Object[] values) {
        try (JsonParser p = bytes != null ? json.createParser(bytes) : json.createParser(text)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return r.invalidJson;
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                Integer idx = r.index.get(p.currentName());
                JsonToken v = p.nextToken();
                if (idx == null) {
                    p.skipChildren();
                } else {
                    values[idx] = value(p, v, r.kinds[idx]);
                }
            }
            if (t != JsonToken.END_OBJECT) {
                return r.invalidJson;
            }
            return null;
        } catch (java.io.IOException e) {  // Jackson's parse errors (JsonProcessingException), limits included
            return r.invalidJson;
        }
    }

    /** The kind marker of a value present with the wrong JSON kind (null stays null: JSON null = absent). */
    private static final Object WRONG_KIND = new Object();

    private static Object value(JsonParser p, JsonToken v, int kind) throws java.io.IOException {
        switch (v) {
            case VALUE_NULL:
                return null;
            case VALUE_STRING: {
                if (kind != Rules.STRING) {
                    return WRONG_KIND;
                }
                String text = p.getText();
                return isText(text) ? text : WRONG_KIND;
            }
            case VALUE_NUMBER_INT:
                if (kind == Rules.LONG) {
                    JsonParser.NumberType nt = p.getNumberType();
                    return nt == JsonParser.NumberType.BIG_INTEGER ? WRONG_KIND : (Object) p.getLongValue();
                }
                if (kind == Rules.DOUBLE) {
                    double d = p.getDoubleValue();
                    return Double.isFinite(d) ? (Object) d : WRONG_KIND;
                }
                return WRONG_KIND;
            case VALUE_NUMBER_FLOAT: {
                double d = p.getDoubleValue();
                if (kind == Rules.DOUBLE) {
                    return Double.isFinite(d) ? (Object) d : WRONG_KIND;
                }
                if (kind == Rules.LONG && Double.isFinite(d) && d == Math.floor(d) && d >= -TWO_63 && d < TWO_63) {
                    return (long) d;  // 12.0 and 1.7E12 are longs (events._is_kind)
                }
                return WRONG_KIND;
            }
            case START_OBJECT:
            case START_ARRAY:
                p.skipChildren();
                return WRONG_KIND;
            default:  // true, false
                return WRONG_KIND;
        }
    }

    /** No lone surrogate (an escape such as "\ud800" without its pair): such a string is no Unicode text. */
    private static boolean isText(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    /** The checks after parsing, in the order of events.reject_reason. */
    private static String check(Object[] values, Rules r, long nowMs) {
        String reason = null;
        for (int i = 0; i < r.kinds.length && reason == null; i++) {
            if (values[i] == null) {
                if (r.required[i]) {
                    reason = r.missing[i];
                }
            } else if (values[i] == WRONG_KIND) {
                reason = r.wrongType[i];
            }
        }
        if (reason != null) {
            return reason;
        }
        if ((Long) values[r.version] != r.schemaVersion) {
            return r.badVersion;
        }
        String id = (String) values[r.eventId];
        int idLength = id.codePointCount(0, id.length());  // Python's len(): code points
        if (idLength > r.maxIdLength || idLength == 0) {
            return r.idTooLong;
        }
        if (!r.eventTypes.contains((String) values[r.eventType])) {
            return r.badType;
        }
        if (!r.zones.contains((String) values[r.pickupZone])
                || (values[r.dropoffZone] != null && !r.zones.contains((String) values[r.dropoffZone]))) {
            return r.unknownZone;
        }
        for (int i = 0; i < values.length; i++) {
            if (r.ranged[i] && values[i] != null) {
                double d = (Double) values[i];
                if (!(r.low[i] <= d && d <= r.high[i])) {
                    return r.outOfRange[i];
                }
            }
        }
        long ts = (Long) values[r.eventTime];
        if (ts > nowMs + r.maxFutureSkewMs) {
            return r.future;
        }
        if (ts < nowMs - r.maxEventAgeMs) {
            return r.tooOld;
        }
        return null;
    }

    /** The rules literal, read once: the contract of ridecast.events as data (see flink_jobs/sql.py). */
    static final class Rules {
        static final int STRING = 0;
        static final int LONG = 1;
        static final int DOUBLE = 2;

        final Map<String, Integer> index = new HashMap<>();
        int[] kinds;
        boolean[] required;
        boolean[] ranged;
        double[] low;
        double[] high;
        String[] missing;
        String[] wrongType;
        String[] outOfRange;
        int[] output;
        int version;
        int eventId;
        int eventTime;
        int eventType;
        int pickupZone;
        int dropoffZone;
        long schemaVersion;
        int maxIdLength;
        int maxPayloadBytes;
        long maxFutureSkewMs;
        long maxEventAgeMs;
        Set<String> eventTypes;
        Set<String> zones;
        String invalidJson;
        String tooLarge;
        String badVersion;
        String idTooLong;
        String badType;
        String unknownZone;
        String future;
        String tooOld;
        String checkerError;

        @SuppressWarnings("unchecked")
        static Rules read(String text) {
            Map<String, Object> m;
            try {
                m = new ObjectMapper().readValue(text, Map.class);
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("ridecast_check: unreadable rules literal", e);
            }
            Rules r = new Rules();
            List<Map<String, Object>> fields = (List<Map<String, Object>>) m.get("fields");
            int n = fields.size();
            r.kinds = new int[n];
            r.required = new boolean[n];
            r.ranged = new boolean[n];
            r.low = new double[n];
            r.high = new double[n];
            r.missing = new String[n];
            r.wrongType = new String[n];
            r.outOfRange = new String[n];
            for (int i = 0; i < n; i++) {
                Map<String, Object> f = fields.get(i);
                String name = (String) f.get("name");
                r.index.put(name, i);
                String kind = (String) f.get("kind");
                r.kinds[i] = "string".equals(kind) ? STRING : "long".equals(kind) ? LONG : DOUBLE;
                if (!"string".equals(kind) && !"long".equals(kind) && !"double".equals(kind)) {
                    throw new IllegalArgumentException("ridecast_check: unknown kind " + kind + " of " + name);
                }
                r.required[i] = Boolean.TRUE.equals(f.get("required"));
                r.ranged[i] = r.kinds[i] == DOUBLE && f.get("low") != null;
                r.low[i] = r.ranged[i] ? ((Number) f.get("low")).doubleValue() : 0;
                r.high[i] = r.ranged[i] ? ((Number) f.get("high")).doubleValue() : 0;
                r.missing[i] = (String) f.get("missing");
                r.wrongType[i] = (String) f.get("wrong_type");
                r.outOfRange[i] = (String) f.get("out_of_range");
            }
            r.output = new int[OUTPUT.length];
            for (int i = 0; i < OUTPUT.length; i++) {
                r.output[i] = r.field(OUTPUT[i]);
            }
            r.version = r.field("schema_version");
            r.eventId = r.field("event_id");
            r.eventTime = r.field("event_time_ms");
            r.eventType = r.field("event_type");
            r.pickupZone = r.field("pickup_zone");
            r.dropoffZone = r.field("dropoff_zone");
            r.schemaVersion = ((Number) m.get("schema_version")).longValue();
            r.maxIdLength = ((Number) m.get("max_id_length")).intValue();
            r.maxPayloadBytes = ((Number) m.get("max_payload_bytes")).intValue();
            r.maxFutureSkewMs = ((Number) m.get("max_future_skew_ms")).longValue();
            r.maxEventAgeMs = ((Number) m.get("max_event_age_ms")).longValue();
            r.eventTypes = new HashSet<>((List<String>) m.get("event_types"));
            r.zones = new HashSet<>((List<String>) m.get("zones"));
            Map<String, String> reasons = (Map<String, String>) m.get("reasons");
            r.invalidJson = reasons.get("invalid_json");
            r.tooLarge = reasons.get("too_large");
            r.badVersion = reasons.get("bad_version");
            r.idTooLong = reasons.get("id_too_long");
            r.badType = reasons.get("bad_type");
            r.unknownZone = reasons.get("unknown_zone");
            r.future = reasons.get("future");
            r.tooOld = reasons.get("too_old");
            r.checkerError = reasons.get("checker_error");
            if (r.checkerError == null) {  // a null reason would let the message pass as valid
                throw new IllegalArgumentException("ridecast_check: the rules have no checker_error reason");
            }
            return r;
        }

        private int field(String name) {
            Integer i = index.get(name);
            if (i == null) {
                throw new IllegalArgumentException("ridecast_check: the rules have no field " + name);
            }
            return i;
        }
    }
}
