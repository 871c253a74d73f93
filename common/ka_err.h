#ifndef KA_ERR_H
#define KA_ERR_H

/* Return codes shared by every module. Functions that fail also fill a
 * caller-provided error text; they never log. */
typedef enum ka_err {
    KA_OK = 0,
    KA_ERR = -1,          /* generic failure, see the error text */
    KA_ERR_INVALID = -2,  /* bad input: dead-letter it, do not retry */
    KA_ERR_RETRY = -3,    /* transient (connection lost, timeout): retry */
    KA_ERR_FENCED = -4,   /* another instance owns the partition now */
    KA_ERR_CONFIG = -5,   /* bad configuration: exit with a message */
} ka_err_t;

#define KA_ERRSTR_SIZE 512

/* Human-readable name of a return code; never NULL. */
const char *ka_err_name(ka_err_t err);

/* Out-of-memory is not recoverable here: like Redis' zmalloc we abort. */
void *ka_malloc(size_t size);
void *ka_calloc(size_t nmemb, size_t size);
void *ka_realloc(void *ptr, size_t size);
char *ka_strdup(const char *s);
char *ka_strndup(const char *s, size_t n);

#endif
