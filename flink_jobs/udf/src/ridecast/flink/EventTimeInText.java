package ridecast.flink;

import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * The event time the source's watermark uses, read from the message text without parsing it:
 * {@code ridecast_event_time(payload, pattern, now_ms, max_future_skew_ms, max_event_age_ms)}.
 *
 * <p>Reads the message's bytes as delivered. The first match of {@code pattern} ({@code ridecast.events.EVENT_TIME_IN_TEXT}, passed as a literal so the
 * contract stays in Python), read as a double and truncated to milliseconds, as
 * {@code events.event_time_in_text} does; null unless it lies in [now - max age, now + max future skew], so a
 * far-future or absurd timestamp cannot move the watermark. The check function later refuses an event whose
 * parsed time differs from this one.
 *
 * <p>Why Java: as a SQL expression this was a POSITION/SUBSTRING/SPLIT_INDEX chain with a REGEXP_EXTRACT
 * fallback, evaluated up to 10 times per event (Flink inlines a computed column into the watermark generator and
 * into the projection, and a CASE or BETWEEN repeats its operands); string scans were half the task thread's
 * time. Here the pattern is compiled once and the text scanned once per call.
 */
public class EventTimeInText extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    private transient String patternText;
    private transient Pattern pattern;

    public Long eval(byte[] payload, String patternLiteral, Long nowMs, Long maxFutureSkewMs, Long maxEventAgeMs) {
        if (payload == null || patternLiteral == null || nowMs == null || maxFutureSkewMs == null
                || maxEventAgeMs == null) {
            return null;
        }
        if (patternLiteral != patternText && !patternLiteral.equals(patternText)) {
            pattern = Pattern.compile(patternLiteral);
            patternText = patternLiteral;
        }
        // The pattern is ASCII, so it matches the UTF-8 bytes read as Latin-1 exactly where it matches the decoded
        // text: a multi-byte character becomes chars >= 0x80, which no part of it matches. No decoding needed.
        Matcher m = pattern.matcher(new String(payload, StandardCharsets.ISO_8859_1));
        if (!m.find()) {
            return null;
        }
        double value;
        try {
            value = Double.parseDouble(m.group(1));
        } catch (NumberFormatException e) {
            return null;
        }
        if (!Double.isFinite(value)) {
            return null;
        }
        long ms = (long) value;  // truncates toward zero, as Python's int(); saturates far outside the range below
        if (ms > nowMs + maxFutureSkewMs || ms < nowMs - maxEventAgeMs) {
            return null;
        }
        return ms;
    }
}
