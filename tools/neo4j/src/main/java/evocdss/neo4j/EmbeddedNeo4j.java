package evocdss.neo4j;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;

/**
 * Runs a real Neo4j 5.26 (community) database embedded in this JVM and serves
 * Bolt on a loopback address, for the evocdss test suite.
 *
 * <pre>
 * java -cp ... evocdss.neo4j.EmbeddedNeo4j --data DIR --port PORT [--host 127.0.0.1] [--pagecache-mb 256]
 * </pre>
 *
 * Prints exactly one line on stdout, {@code READY bolt://HOST:PORT}, once the
 * default database is available, then blocks until the JVM is terminated
 * (SIGTERM/SIGINT); a shutdown hook shuts the DBMS down cleanly. Auth is off.
 * Neo4j's own logs go to DIR/logs/ (debug.log, ...).
 */
public final class EmbeddedNeo4j {

    private EmbeddedNeo4j() {}

    private static void usage(String msg) {
        System.err.println("EmbeddedNeo4j: " + msg);
        System.err.println("usage: EmbeddedNeo4j --data DIR --port PORT [--host 127.0.0.1] [--pagecache-mb 256]");
        System.exit(2);
    }

    public static void main(String[] args) throws Exception {
        Path data = null;
        int port = -1;
        String host = "127.0.0.1";
        long pagecacheMb = 256;

        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                usage("missing value for " + a);
            }
            String v = args[++i];
            switch (a) {
                case "--data" -> data = Path.of(v).toAbsolutePath();
                case "--port" -> port = Integer.parseInt(v);
                case "--host" -> host = v;
                case "--pagecache-mb" -> pagecacheMb = Long.parseLong(v);
                default -> usage("unknown argument " + a);
            }
        }
        if (data == null) {
            usage("--data is required");
        }
        if (port <= 0 || port > 65535) {
            usage("--port is required (1-65535)");
        }

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(data)
                // Bolt on loopback only, no auth, no TLS.
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(host, port))
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                // Anonymous usage reporting (dbms.usage_report.enabled): the machine is offline.
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Modest footprint for a 2-core test box.
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMb))
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.logical_log_rotation_threshold, ByteUnit.mebiBytes(16))
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "false")
                // Bolt otherwise idles ~5 s on shutdown waiting for its (empty) worker pool.
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                dbms.shutdown();
            } catch (Throwable t) {
                System.err.println("EmbeddedNeo4j: error during shutdown: " + t);
            } finally {
                stopped.countDown();
            }
        }, "evocdss-neo4j-shutdown"));

        GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        if (!db.isAvailable(Duration.ofSeconds(120).toMillis())) {
            System.err.println("EmbeddedNeo4j: database '" + db.databaseName() + "' did not become available");
            System.exit(1);
        }

        System.out.println("READY bolt://" + host + ":" + port);
        System.out.flush();

        // Block until the shutdown hook has run (i.e. until we are terminated).
        while (!stopped.await(1, TimeUnit.HOURS)) {
            // keep waiting
        }
    }
}
