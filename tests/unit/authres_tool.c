/*
 * authres_tool.c - prints Authentication-Results fields built by
 * mailauth/authres.c, for test_authres_parse.py to read with an
 * independent RFC 8601 parser (python3-authres).
 *
 * stdin, one tab-separated line per step, a field per "end":
 *	id	AUTHSERV-ID
 *	spf	RESULT	SENDER	HELO
 *	dkim	RESULT	D	S	B	REASON
 *	dmarc	RESULT	FROM	PUBLISHED-POLICY
 *	iprev	RESULT	IP
 *	end
 * An empty column is "".  Each field goes to stdout as built, followed
 * by an empty line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "buf.h"

#define TOOL_COLS 7

static size_t
tool_split(char *line, char **col)
{
	size_t n = 0;
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < TOOL_COLS) {
		col[n++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	for (size_t i = n; i < TOOL_COLS; i++)
		col[i] = "";
	return n;
}

int
main(void)
{
	char line[4096], *col[TOOL_COLS];
	struct dkim_verify_result dk;
	struct dmarc_verdict dv;
	struct authres a;
	struct buf out;
	int r;

	buf_init(&out, 1 << 16);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		tool_split(line, col);
		if (strcmp(col[0], "id") == 0) {
			buf_reset(&out);
			authres_begin(&a, &out, col[1]);
		} else if (strcmp(col[0], "spf") == 0) {
			authres_add_spf(&a, col[1], col[2], col[3]);
		} else if (strcmp(col[0], "dkim") == 0) {
			memset(&dk, 0, sizeof(dk));
			for (r = DKIM_VERIFY_PASS; r <= DKIM_VERIFY_PERMERROR;
			    r++)
				if (strcmp(dkim_verify_res_name(r),
				    col[1]) == 0)
					dk.res = r;
			snprintf(dk.d, sizeof(dk.d), "%s", col[2]);
			snprintf(dk.s, sizeof(dk.s), "%s", col[3]);
			snprintf(dk.b, sizeof(dk.b), "%s", col[4]);
			dk.reason = col[5][0] != '\0' ? col[5] : NULL;
			authres_add_dkim(&a, &dk);
		} else if (strcmp(col[0], "dmarc") == 0) {
			memset(&dv, 0, sizeof(dv));
			for (r = DMARC_NONE; r <= DMARC_PERMERROR; r++)
				if (strcmp(dmarc_result_name(r), col[1]) == 0)
					dv.result = r;
			snprintf(dv.from_domain, sizeof(dv.from_domain), "%s",
			    col[2]);
			for (r = DMARC_POLICY_NONE; r <= DMARC_POLICY_REJECT;
			    r++)
				if (strcmp(dmarc_policy_name(r), col[3]) == 0)
					dv.published = r;
			authres_add_dmarc(&a, &dv);
		} else if (strcmp(col[0], "iprev") == 0) {
			authres_add_iprev(&a, col[1], col[2]);
		} else if (strcmp(col[0], "end") == 0) {
			if (authres_finish(&a) != 0)
				return 1;
			fwrite(out.p, 1, out.len, stdout);
			fputs("\r\n", stdout);
		}
	}
	buf_fini(&out);
	return 0;
}
