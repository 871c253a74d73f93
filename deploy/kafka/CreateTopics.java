// Creates the topics listed in a file ("name partitions [retention.ms]" per line, # comments)
// in one JVM start, skipping those that exist. Run by deploy/local/stack as
//   java -cp 'libs/*' CreateTopics.java BOOTSTRAP TOPICS_FILE
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;

public class CreateTopics {
    public static void main(String[] args) throws Exception {
        List<NewTopic> wanted = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            String s = line.replaceAll("#.*", "").trim();
            if (s.isEmpty()) continue;
            String[] f = s.split("\\s+");
            NewTopic t = new NewTopic(f[0], Integer.parseInt(f[1]), (short) 1);
            // an optional third column: retention.ms (docs/retention.md)
            if (f.length > 2) t.configs(Map.of("retention.ms", f[2]));
            wanted.add(t);
        }
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]))) {
            Set<String> existing = admin.listTopics().names().get();
            List<NewTopic> missing = new ArrayList<>();
            for (NewTopic t : wanted) if (!existing.contains(t.name())) missing.add(t);
            if (!missing.isEmpty()) admin.createTopics(missing).all().get();
            System.out.println("topics: " + missing.size() + " created, "
                    + (wanted.size() - missing.size()) + " already there");
        }
    }
}
