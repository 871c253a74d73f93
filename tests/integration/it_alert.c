/* The alert bridge tests' receiver, Alertmanagers and alerts (it_alert.h). */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_alert.h"
#include "it_util.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_buf.h"
#include "ka_validate.h"

/* The webhook receiver ------------------------------------------------------ */

typedef struct note {
    char *path; /* /<user id> */
    json_t *body;
} note_t;

static pthread_mutex_t notes_mu = PTHREAD_MUTEX_INITIALIZER;
static note_t notes[8192];
static size_t nnotes;
static struct MHD_Daemon *hook;

typedef struct upload {
    char *data;
    size_t len;
} upload_t;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)cls;
    (void)version;
    upload_t *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof *u);
        return MHD_YES;
    }
    if (*size) {
        u->data = realloc(u->data, u->len + *size + 1);
        memcpy(u->data + u->len, data, *size);
        u->len += *size;
        u->data[u->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") == 0 && u->data) {
        json_t *body = json_loadb(u->data, u->len, 0, NULL);
        pthread_mutex_lock(&notes_mu);
        if (body && nnotes < sizeof notes / sizeof notes[0])
            notes[nnotes++] = (note_t){strdup(url), body};
        else
            json_decref(body);
        pthread_mutex_unlock(&notes_mu);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    upload_t *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
    }
}

int it_hook_start(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    hook = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    assert_non_null(hook);
    return MHD_get_daemon_info(hook, MHD_DAEMON_INFO_BIND_PORT)->port;
}

void it_hook_stop(void)
{
    if (hook)
        MHD_stop_daemon(hook);
    hook = NULL;
    for (size_t i = 0; i < nnotes; i++) {
        free(notes[i].path);
        json_decref(notes[i].body);
    }
    nnotes = 0;
}

static const char *fp_of_alert(const json_t *a)
{
    return json_string_value(json_object_get(json_object_get(a, "labels"), "fingerprint"));
}

int it_hook_count(const char *path, const char *am_url, const char *fp, const char *status,
                  size_t *most, const char *suffix)
{
    int n = 0;
    pthread_mutex_lock(&notes_mu);
    for (size_t i = 0; i < nnotes; i++) {
        if (path && strcmp(notes[i].path, path) != 0)
            continue;
        const char *ext = json_string_value(json_object_get(notes[i].body, "externalURL"));
        if (am_url && (!ext || strcmp(ext, am_url) != 0))
            continue;
        json_t *alerts = json_object_get(notes[i].body, "alerts");
        size_t k, ours = 0;
        int hit = 0;
        json_t *a;
        json_array_foreach(alerts, k, a)
        {
            const char *f = fp_of_alert(a);
            const char *st = json_string_value(json_object_get(a, "status"));
            if (f && suffix && strstr(f, suffix))
                ours++;
            if (f && (!fp || strcmp(f, fp) == 0) && (!status || (st && !strcmp(st, status))))
                hit = 1;
        }
        if (hit) {
            n++;
            if (most && ours > *most)
                *most = ours;
        }
    }
    pthread_mutex_unlock(&notes_mu);
    return n;
}

int it_hook_wait(const char *path, const char *am_url, const char *fp, const char *status,
                 int timeout_ms)
{
    for (int waited = 0;; waited += 100) {
        int n = it_hook_count(path, am_url, fp, status, NULL, NULL);
        if (n > 0 || waited >= timeout_ms)
            return n;
        usleep(100 * 1000);
    }
}

json_t *it_hook_alert(const char *fp)
{
    json_t *found = NULL;
    pthread_mutex_lock(&notes_mu);
    for (size_t i = 0; i < nnotes && !found; i++) {
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(notes[i].body, "alerts"), k, a)
        {
            const char *f = fp_of_alert(a);
            if (!found && f && strcmp(f, fp) == 0)
                found = json_deep_copy(a);
        }
    }
    pthread_mutex_unlock(&notes_mu);
    return found;
}

/* Alertmanager -------------------------------------------------------------- */

static int sh(const char *cmd, char *out, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return it_sh(full, out, len);
}

void it_am_config(const char *kactl, const char *dir, int hook_port, const char *const *users,
                  size_t nusers)
{
    char contacts[256], cmd[1024], out[8192];
    snprintf(contacts, sizeof contacts, "%s/contacts.csv", dir);
    FILE *f = fopen(contacts, "w");
    assert_non_null(f);
    fprintf(f, "user_id,channel,address\n");
    for (size_t i = 0; i < nusers; i++)
        fprintf(f, "%s,webhook,http://127.0.0.1:%d/%s\n", users[i], hook_port, users[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s alertmanager-config --contacts %s --out %s/am.yml --group-wait 0s "
             "--group-interval 1s --repeat-interval 1h",
             kactl, contacts, dir);
    if (sh(cmd, out, sizeof out) != 0)
        fail_msg("kactl alertmanager-config: %s", out);
}

pid_t it_am_start(const char *dir, const char *name, int port, int wipe)
{
    char cmd[512], out[4096], data[256], config[256], storage[300], listen[64], external[80];
    snprintf(data, sizeof data, "%s/%s-data", dir, name);
    if (wipe) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", data);
        assert_int_equal(sh(cmd, out, sizeof out), 0);
    }
    snprintf(config, sizeof config, "--config.file=%s/am.yml", dir);
    snprintf(storage, sizeof storage, "--storage.path=%s", data);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    snprintf(external, sizeof external, "--web.external-url=http://127.0.0.1:%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char log[300];
        snprintf(log, sizeof log, "%s/%s.log", dir, name);
        if (!freopen(log, "a", stderr))
            _exit(126);
        execl("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", config, storage,
              listen, external, "--cluster.listen-address=", "--log.level=warn", (char *)NULL);
        _exit(127);
    }
    snprintf(cmd, sizeof cmd, "curl -fsS -m 1 http://127.0.0.1:%d/-/ready", port);
    for (int i = 0; i < 100; i++) {
        if (sh(cmd, out, sizeof out) == 0)
            return pid;
        usleep(100 * 1000);
    }
    fail_msg("Alertmanager did not start: see %s/%s.log", dir, name);
    return 0;
}

void it_am_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *it_am_active(int port, const char *prefix)
{
    char cmd[512], *out = calloc(1, 1 << 20);
    snprintf(cmd, sizeof cmd,
             "curl -fsS -m 5 'http://127.0.0.1:%d/api/v2/alerts?active=true&silenced=true&"
             "inhibited=true&unprocessed=true'",
             port);
    it_sh(cmd, out, 1 << 20);
    json_t *arr = json_loads(out, 0, NULL);
    free(out);
    char **v = calloc(json_array_size(arr) + 1, sizeof *v);
    size_t nv = 0, i;
    json_t *a;
    json_array_foreach(arr, i, a)
    {
        const char *fp = fp_of_alert(a);
        const char *st = json_string_value(json_object_get(json_object_get(a, "status"), "state"));
        if (fp && strncmp(fp, prefix, strlen(prefix)) == 0 && st && strcmp(st, "active") == 0)
            v[nv++] = strdup(fp);
    }
    json_decref(arr);
    qsort(v, nv, sizeof *v, cmp_str);
    ka_buf_t b = KA_BUF_INIT;
    for (i = 0; i < nv; i++) {
        ka_buf_append(&b, v[i], strlen(v[i]));
        ka_buf_append(&b, "\n", 1);
        free(v[i]);
    }
    free(v);
    char *s = strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    return s;
}

/* Alerts -------------------------------------------------------------------- */

void it_alert(ka_pg_t *pg, ka_producer_t *kp, const char *topic, const char *fp,
              const char *type, int proto_type, const char *severity, int firing,
              const char *kind, int proto_kind, const char *subject, int64_t starts_ms)
{
    char alert_id[256], starts[24], ends[24], ce_id[300];
    int64_t now = ka_now_ms();
    snprintf(alert_id, sizeof alert_id, "%s@%lld", fp, (long long)starts_ms);
    snprintf(starts, sizeof starts, "%lld", (long long)starts_ms);
    snprintf(ends, sizeof ends, "%lld", (long long)now);
    const char *args[] = {fp, alert_id, type, severity, firing ? "firing" : "resolved", kind,
                          subject, starts, firing ? NULL : ends};
    ka_pg_param_t p[9];
    for (int i = 0; i < 9; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    char err[KA_ERRSTR_SIZE];
    if (ka_pg_query(pg,
                    "INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, "
                    "subject_kind, subject_id, summary, details, starts_at, ends_at, "
                    "last_transition_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $3 || ' on ' || $7, "
                    "jsonb_build_object('subject', $7), to_timestamp($8::bigint / 1000.0), "
                    "to_timestamp($9::bigint / 1000.0), now()) ON CONFLICT (fingerprint) DO "
                    "UPDATE SET alert_id = EXCLUDED.alert_id, status = EXCLUDED.status, "
                    "starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, updated_at = now()",
                    9, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("alert_state: %s", err);
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AlertEvent ev = KA__V1__ALERT_EVENT__INIT;
    snprintf(ce_id, sizeof ce_id, "%s:%s", alert_id, firing ? "firing" : "resolved");
    h.event_id = ce_id;
    h.occurred_at_ms = now;
    h.producer = "ka";
    ev.header = &h;
    ev.alert_id = alert_id;
    ev.fingerprint = (char *)fp;
    ev.type = proto_type;
    ev.severity = strcmp(severity, "critical") == 0 ? KA__V1__SEVERITY__SEVERITY_CRITICAL
                                                    : KA__V1__SEVERITY__SEVERITY_WARNING;
    ev.status = firing ? KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING
                       : KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED;
    ev.subject_kind = proto_kind;
    ev.subject_id = (char *)subject;
    ev.summary = "test";
    ev.starts_at_ms = starts_ms;
    ev.ends_at_ms = firing ? 0 : now;
    size_t len = ka__v1__alert_event__get_packed_size(&ev);
    uint8_t *buf = malloc(len + 1);
    ka__v1__alert_event__pack(&ev, buf);
    it_produce(kp, topic, fp, buf, len);
    free(buf);
}

/* Metrics ------------------------------------------------------------------- */

double it_metric(const char *body, const char *name, const char *labels)
{
    size_t nlen = strlen(name);
    for (const char *line = body; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (line[0] != '#' && len > nlen && strncmp(line, name, nlen) == 0 &&
            (line[nlen] == ' ' || line[nlen] == '{')) {
            char *copy = strndup(line, len);
            const char *space = strrchr(copy, ' ');
            int match = !labels || !labels[0] || (line[nlen] == '{' && strstr(copy, labels));
            double v = space ? strtod(space + 1, NULL) : -1;
            free(copy);
            if (match)
                return v;
        }
        line = end ? end + 1 : NULL;
    }
    return -1;
}
