import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

import org.apache.flink.table.data.RowData;

import ridecast.flink.CheckEvent;
import ridecast.flink.EventTimeInText;

/**
 * Drives the job's Java functions without Flink, for tests/test_udf.py: reads commands from stdin, one per line,
 * and prints one result line each. Test code, compiled by the test; not part of ridecast-udf.jar.
 *
 *   check NOW_MS BASE64(payload)        -> reason \t BASE64(event_id) \t event_time_ms
 *   time NOW_MS SKEW_MS AGE_MS BASE64   -> event time in ms, or "null"
 * The first line is the rules literal (flink_jobs.sql.rules_literal), the second the event-time pattern.
 */
public class CheckOracle {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String rules = in.readLine();
        String pattern = in.readLine();
        CheckEvent check = new CheckEvent();
        EventTimeInText time = new EventTimeInText();
        StringBuilder out = new StringBuilder();
        for (String cmd; (cmd = in.readLine()) != null; ) {
            String[] f = cmd.split(" ", -1);  // keep a trailing empty field (an empty message)
            switch (f[0]) {
                case "check": {
                    RowData r = check.eval(Base64.getDecoder().decode(f[2]), Long.parseLong(f[1]), rules);
                    out.append(r.isNullAt(0) ? "null" : r.getString(0).toString()).append('\t')
                       .append(r.isNullAt(1) ? "null" : b64(r.getString(1).toBytes())).append('\t')
                       .append(r.isNullAt(2) ? "null" : Long.toString(r.getLong(2))).append('\n');
                    break;
                }
                case "time": {
                    out.append(time.eval(Base64.getDecoder().decode(f[4]), pattern, Long.parseLong(f[1]), Long.parseLong(f[2]),
                                         Long.parseLong(f[3]))).append('\n');
                    break;
                }
                default:
                    throw new IllegalArgumentException(cmd);
            }
        }
        System.out.print(out);
    }

    private static String b64(byte[] b) {
        return Base64.getEncoder().encodeToString(b);
    }
}
