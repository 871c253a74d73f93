/* A session left idle inside a transaction (its process paused or frozen)
 * is ended by PostgreSQL after KA_PG_IDLE_IN_TRANSACTION_MS, and the locks it
 * held go with it: another session takes the same transaction-scoped
 * advisory lock (the forecast's recompute lock is one) soon after, and the
 * frozen session's next statement fails as a lost connection, which the
 * worker loop retries after reconnecting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"

#define LOCK_SQL "SELECT pg_try_advisory_xact_lock(4242999)::int"

static void a_session_idle_in_a_transaction_is_ended_and_its_locks_freed(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE];
    ka_config_t *cfg = it_config("test-pg-idle");
    const char *dsn = ka_config_str(cfg, "KA_PG_DSN");
    ka_pg_set_idle_in_transaction_timeout(800);
    ka_pg_t *frozen = ka_pg_connect(dsn, err, sizeof err);
    ka_pg_set_idle_in_transaction_timeout(0);
    ka_pg_t *other = ka_pg_connect(dsn, err, sizeof err);
    assert_non_null(frozen);
    assert_non_null(other);

    assert_int_equal(it_pg_int(frozen, "SELECT (current_setting("
                                       "'idle_in_transaction_session_timeout') = '800ms')::int",
                               NULL), 1);
    assert_int_equal(ka_pg_exec(frozen, "BEGIN", err, sizeof err), KA_OK);
    assert_int_equal(it_pg_int(frozen, LOCK_SQL, NULL), 1);
    /* Held: the other session cannot have it while the first one lives. */
    assert_int_equal(it_pg_int(other, LOCK_SQL, NULL), 0);

    long long got = 0;
    int waited_ms = 0;
    for (; waited_ms < 10000 && got != 1; waited_ms += 100) {
        usleep(100 * 1000);
        got = it_pg_int(other, LOCK_SQL, NULL);
    }
    assert_int_equal(got, 1);
    assert_true(waited_ms >= 700); /* not before the timeout */
    /* The frozen session, woken, finds its connection gone: a retry, not a
     * silent commit of half a transaction. */
    ka_err_t rc = ka_pg_exec(frozen, "COMMIT", err, sizeof err);
    assert_int_not_equal(rc, KA_OK);
    assert_false(ka_pg_ok(frozen));
    printf("idle in transaction: the lock was free again after %d ms\n", waited_ms);
    ka_pg_free(frozen);
    ka_pg_free(other);
    ka_config_free(cfg);
}

static void the_configured_default_reaches_the_session(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE];
    ka_config_t *cfg = it_config("test-pg-idle");
    ka_pg_set_idle_in_transaction_timeout((int)ka_config_int(cfg, "KA_PG_IDLE_IN_TRANSACTION_MS"));
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    assert_non_null(pg);
    assert_int_equal(it_pg_int(pg, "SELECT (current_setting('idle_in_transaction_session_timeout')"
                                   " = '1min')::int", NULL), 1);
    ka_pg_free(pg);
    ka_pg_set_idle_in_transaction_timeout(0);
    ka_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_session_idle_in_a_transaction_is_ended_and_its_locks_freed),
        cmocka_unit_test(the_configured_default_reaches_the_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
