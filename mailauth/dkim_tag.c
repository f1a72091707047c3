/*
 * dkim_tag.c - tag=value lists (RFC 6376 3.2).
 */
#include "dkim_tag.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "err.h"

static bool
dkim_tag_fws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

int
dkim_tag_parse(const char *s, size_t len, struct dkim_tag *t, size_t max)
{
	size_t i = 0, n = 0, k, e;

	while (i < len) {
		struct dkim_tag tag;

		while (i < len && dkim_tag_fws(s[i]))
			i++;
		if (i == len)
			break;
		if (s[i] == ';') {
			i++;
			continue;
		}
		/* tag-name = ALPHA *ALNUMPUNC */
		if (!isalpha((unsigned char)s[i]))
			return PR_EINVAL;
		tag.name_off = i;
		while (i < len && (isalnum((unsigned char)s[i]) ||
		    s[i] == '_'))
			i++;
		tag.name_len = i - tag.name_off;
		while (i < len && dkim_tag_fws(s[i]))
			i++;
		if (i == len || s[i] != '=')
			return PR_EINVAL;
		i++;
		tag.raw_off = i;
		while (i < len && s[i] != ';')
			i++;
		tag.raw_end = i;
		for (k = tag.raw_off; k < i && dkim_tag_fws(s[k]); k++)
			;
		for (e = i; e > k && dkim_tag_fws(s[e - 1]); e--)
			;
		tag.val_off = k;
		tag.val_len = e - k;
		for (k = 0; k < n; k++)
			if (t[k].name_len == tag.name_len &&
			    memcmp(s + t[k].name_off, s + tag.name_off,
			    tag.name_len) == 0)
				return PR_EINVAL;
		if (n == max)
			return PR_ENOSPC;
		t[n++] = tag;
	}
	return (int)n;
}

const struct dkim_tag *
dkim_tag_find(const char *s, const struct dkim_tag *t, size_t n,
    const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < n; i++)
		if (t[i].name_len == len &&
		    memcmp(s + t[i].name_off, name, len) == 0)
			return &t[i];
	return NULL;
}

bool
dkim_tag_is(const char *s, const struct dkim_tag *tag, const char *word,
    bool nocase)
{
	size_t n = strlen(word);

	if (tag->val_len != n)
		return false;
	return nocase ? strncasecmp(s + tag->val_off, word, n) == 0 :
	    memcmp(s + tag->val_off, word, n) == 0;
}
