#!/usr/bin/python3
"""The postroom admin CLI end to end: exit codes, messages, the database."""

import os
import sqlite3
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
import tap  # noqa: E402


class CliTest(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance(tls=False)

    def tearDown(self):
        self.inst.close()

    def run_cli(self, *args, input=None):
        return self.inst.cli(*args, input=input, check=False)

    def assertFails(self, r, code, needle):
        self.assertEqual(r.returncode, code, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertGreaterEqual(len(lines), 1)
        if code == 1:
            self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(needle, r.stderr)

    def db_dump(self):
        con = sqlite3.connect(os.path.join(self.inst.data_dir, "mail.db"))
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()

    def test_init_is_idempotent(self):
        r = self.run_cli("init")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("schema version", r.stdout)
        self.assertTrue(os.path.exists(
            os.path.join(self.inst.data_dir, "mail.db")))

    def test_domains(self):
        self.assertEqual(self.run_cli("domain", "add", "Example.ORG")
                         .returncode, 0)
        self.run_cli("domain", "add", "b.example")
        r = self.run_cli("domain", "list")
        self.assertEqual(r.stdout.split(), ["b.example", "example.org"])
        self.assertFails(self.run_cli("domain", "add", "example.org"), 1,
                         "example.org")
        self.assertFails(self.run_cli("domain", "add", "bad_domain!"), 1,
                         "invalid domain")
        self.assertFails(self.run_cli("domain", "del", "nope.example"), 1,
                         "nope.example")
        self.assertEqual(self.run_cli("domain", "del", "b.example")
                         .returncode, 0)
        self.assertEqual(self.run_cli("domain", "list").stdout.split(),
                         ["example.org"])

    def test_domain_with_users_cannot_be_deleted(self):
        self.inst.add_domain("example.org")
        self.inst.add_user("a@example.org", "a-password")
        before = self.db_dump()
        self.assertFails(self.run_cli("domain", "del", "example.org"), 1,
                         "example.org")
        self.assertEqual(before, self.db_dump())

    def test_user_add_and_errors_leave_db_unchanged(self):
        self.inst.add_domain("example.org")
        r = self.run_cli("user", "add", "Alice@Example.org",
                         "--password-stdin", "--quota", "10M",
                         input="correct horse\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        before = self.db_dump()
        cases = [
            (("user", "add", "bob@unknown.example", "--password-stdin"),
             "long enough\n", "unknown.example"),
            (("user", "add", "alice@example.org", "--password-stdin"),
             "long enough\n", "alice@example.org"),
            (("user", "add", "not an address", "--password-stdin"),
             "long enough\n", "invalid address"),
            (("user", "add", "carol@example.org", "--password-stdin"),
             "\n", "empty"),
            (("user", "add", "carol@example.org", "--password-stdin"),
             "", "no password"),
            (("user", "add", "carol@example.org", "--password-stdin"),
             "x" * 5000 + "\n", "too long"),
            (("user", "add", "carol@example.org", "--password-stdin",
              "--quota", "lots"), "long enough\n", "invalid quota"),
        ]
        for args, stdin, needle in cases:
            with self.subTest(args=args):
                self.assertFails(self.run_cli(*args, input=stdin), 1, needle)
        self.assertEqual(before, self.db_dump())
        r = self.run_cli("user", "list")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(len(r.stdout.splitlines()), 1)
        self.assertTrue(r.stdout.startswith("alice@example.org\t"))
        self.assertIn("quota 10.0 MiB", r.stdout)

    def test_password_never_printed_or_stored_plain(self):
        self.inst.add_domain("example.org")
        secret = "Sup3r-Secret-Value"
        r = self.run_cli("user", "add", "a@example.org", "--password-stdin",
                         input=secret + "\n")
        self.assertEqual(r.returncode, 0)
        outputs = [r.stdout, r.stderr]
        for args in (("user", "list"), ("check",), ("domain", "list")):
            r = self.run_cli(*args)
            outputs += [r.stdout, r.stderr]
        for out in outputs:
            self.assertNotIn(secret, out)
            self.assertNotIn("$argon2id$", out)
        with open(os.path.join(self.inst.data_dir, "mail.db"), "rb") as f:
            self.assertNotIn(secret.encode(), f.read())

    def test_user_del_passwd_quota(self):
        self.inst.add_domain("example.org")
        self.inst.add_user("a@example.org", "password one")
        r = self.run_cli("user", "passwd", "a@example.org",
                         "--password-stdin", input="password two\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFails(self.run_cli("user", "passwd", "zz@example.org",
                                      input="x\n"), 1, "zz@example.org")
        self.assertEqual(self.run_cli("user", "quota", "a@example.org",
                                      "1G").returncode, 0)
        self.assertIn("quota 1.0 GiB", self.run_cli("user", "list").stdout)
        self.assertEqual(self.run_cli("user", "del", "a@example.org")
                         .returncode, 0)
        self.assertEqual(self.run_cli("user", "list").stdout, "")
        self.assertFails(self.run_cli("user", "del", "a@example.org"), 1,
                         "a@example.org")

    def test_user_list_by_domain(self):
        for d in ("a.example", "b.example"):
            self.inst.add_domain(d)
            self.inst.add_user("u@" + d, "u-password")
        r = self.run_cli("user", "list", "b.example")
        self.assertEqual([l.split("\t")[0] for l in r.stdout.splitlines()],
                         ["u@b.example"])

    def test_aliases(self):
        self.inst.add_domain("example.org")
        self.inst.add_user("a@example.org", "a-password")
        self.inst.add_user("b@example.org", "b-password")
        self.assertEqual(self.run_cli("alias", "add", "team@example.org",
                                      "a@example.org,b@example.org")
                         .returncode, 0)
        self.assertEqual(self.run_cli("alias", "add", "@example.org",
                                      "a@example.org").returncode, 0)
        self.assertEqual(self.run_cli("alias", "add", "fwd@example.org",
                                      "someone@elsewhere.example")
                         .returncode, 0)
        r = self.run_cli("alias", "list")
        lines = r.stdout.splitlines()
        self.assertIn("team@example.org\ta@example.org,b@example.org", lines)
        self.assertIn("@example.org\ta@example.org", lines)
        before = self.db_dump()
        # A loop: x -> y -> x.
        self.assertEqual(self.run_cli("alias", "add", "x@example.org",
                                      "a@example.org").returncode, 0)
        self.assertEqual(self.run_cli("alias", "add", "y@example.org",
                                      "x@example.org").returncode, 0)
        before = self.db_dump()
        self.assertFails(self.run_cli("alias", "add", "x@example.org",
                                      "y@example.org", "--append"), 1,
                         "loop")
        self.assertFails(self.run_cli("alias", "add", "a@example.org",
                                      "b@example.org"), 1, "a@example.org")
        self.assertFails(self.run_cli("alias", "add", "z@nothosted.example",
                                      "a@example.org"), 1, "nothosted")
        self.assertFails(self.run_cli("alias", "add", "z@example.org",
                                      "bad address"), 1, "")
        self.assertEqual(before, self.db_dump())
        self.assertEqual(self.run_cli("alias", "del", "team@example.org")
                         .returncode, 0)
        self.assertNotIn("team@", self.run_cli("alias", "list").stdout)

    def test_usage_errors_exit_2(self):
        for args in (("domain",), ("domain", "frob"), ("user", "add"),
                     ("alias", "add", "x"), ("mailbox",), ("bogus",), ()):
            with self.subTest(args=args):
                r = self.run_cli(*args)
                self.assertEqual(r.returncode, 2, (args, r.stderr))
                self.assertIn("usage", r.stderr)

    def test_config_errors(self):
        bad = os.path.join(self.inst.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("[smtp]\nmax_recipientz = 5\n")
        r = subprocess.run([harness.BIN["cli"], "-c", bad, "domain", "list"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.conf:2: unknown key 'max_recipientz' in [smtp]",
                      r.stderr)

    def test_missing_database_is_clear(self):
        os.remove(os.path.join(self.inst.data_dir, "mail.db"))
        r = self.run_cli("domain", "list")
        self.assertFails(r, 1, "postroom init")

    def test_mailbox_list_empty_and_unknown(self):
        self.inst.add_domain("example.org")
        self.inst.add_user("a@example.org", "a-password")
        r = self.run_cli("mailbox", "list", "a@example.org")
        self.assertEqual((r.returncode, r.stdout), (0, ""))
        self.assertFails(self.run_cli("mailbox", "list", "q@example.org"), 1,
                         "q@example.org")

    def test_check(self):
        r = self.run_cli("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)

    def test_check_relay_tls(self):
        """The smarthost's CA file must be readable; a port that does not
        match smarthost_tls gets a warning."""
        ca = os.path.join(self.inst.tmp, "ca.pem")
        self.inst.extra["relay"] = {"smarthost": "smtp.isp.test:465",
                                    "smarthost_ca": ca}
        self.inst.write_config()
        self.assertFails(self.run_cli("check"), 1,
                         "[relay] smarthost_ca %s is not readable" % ca)
        with open(ca, "w") as f:
            f.write("")
        r = self.run_cli("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("smarthost port 465 is implicit TLS", r.stdout)
        self.inst.extra["relay"]["smarthost_tls"] = "implicit"
        self.inst.extra["relay"]["ca_file"] = ca + ".missing"
        self.inst.write_config()
        self.assertFails(self.run_cli("check"), 1, "[relay] ca_file")
        del self.inst.extra["relay"]["ca_file"]
        self.inst.write_config()
        r = self.run_cli("check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning: [relay]", r.stdout)
        self.inst.extra["relay"]["smarthost_tls"] = "tls"
        self.inst.write_config()
        self.assertFails(self.run_cli("check"), 1, "smarthost_tls")

    def test_two_processes_share_the_database(self):
        """Many CLI processes write at once; every write lands."""
        self.inst.add_domain("example.org")
        errors = []

        def adder(k):
            for i in range(8):
                r = self.run_cli("user", "add", "u%d-%d@example.org" % (k, i),
                                 "--password-stdin", input="a-password\n")
                if r.returncode != 0:
                    errors.append(r.stderr)

        threads = [threading.Thread(target=adder, args=(k,))
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        r = self.run_cli("user", "list")
        self.assertEqual(len(r.stdout.splitlines()), 32)


if __name__ == "__main__":
    sys.exit(tap.unittest_main())
