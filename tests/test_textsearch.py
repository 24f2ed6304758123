"""lib/textsearch.c (kloaderd/lib/textsearch.py): a kbuild-built module
registers an algorithm and searches with it under Debian 6.1 and 6.12, and
Debian's nf_conntrack_amanda, whose init prepares its searches with "kmp",
gets ts_kmp from modprobe and holds it until it goes."""

from __future__ import annotations

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel, KernelOptions
from kloaderd.kernel.profile import KernelProfile
from realkernel import corpus, run_kbuilt, with_dependencies

TS_USER = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/err.h>
#include <linux/string.h>
#include <linux/textsearch.h>
MODULE_LICENSE("GPL");
struct naive { unsigned int len; u8 pattern[]; };
static struct ts_config *naive_init(const void *pattern, unsigned int len, gfp_t gfp, int flags)
{
	struct ts_config *conf;
	struct naive *n;

	if (len > 32)
		return ERR_PTR(-E2BIG);
	conf = alloc_ts_config(sizeof(*n) + len, gfp);
	if (IS_ERR(conf))
		return conf;
	conf->flags = flags;
	n = ts_config_priv(conf);
	n->len = len;
	memcpy(n->pattern, pattern, len);
	return conf;
}
static unsigned int naive_find(struct ts_config *conf, struct ts_state *state)
{
	struct naive *n = ts_config_priv(conf);
	unsigned int consumed = state->offset, len, i;
	const u8 *text;

	len = conf->get_next_block(consumed, &text, conf, state);
	for (i = 0; i + n->len <= len; i++)
		if (!memcmp(text + i, n->pattern, n->len)) {
			state->offset = consumed + i + 1;
			return consumed + i;
		}
	return UINT_MAX;
}
static void naive_destroy(struct ts_config *conf)
{
	pr_info("tsuser: destroy %u\n", ((struct naive *)ts_config_priv(conf))->len);
}
static void *naive_get_pattern(struct ts_config *conf)
{
	return ((struct naive *)ts_config_priv(conf))->pattern;
}
static unsigned int naive_get_pattern_len(struct ts_config *conf)
{
	return ((struct naive *)ts_config_priv(conf))->len;
}
static struct ts_ops naive_ops = {
	.name = "naive", .init = naive_init, .find = naive_find, .destroy = naive_destroy,
	.get_pattern = naive_get_pattern, .get_pattern_len = naive_get_pattern_len,
	.owner = NULL,		/* as a built-in algorithm */
};
static struct ts_ops incomplete = { .name = "incomplete", .init = naive_init };
static struct ts_ops twin;
static int finished;
static void naive_finish(struct ts_config *conf, struct ts_state *state) { finished++; }
static int __init tsuser_init(void)
{
	static const char text[] = "We dance the funky chicken, chicken";
	struct ts_config *conf;
	struct ts_state state;
	unsigned int first, second, third;

	pr_info("tsuser: register %d\n", textsearch_register(&naive_ops));
	twin = naive_ops;
	pr_info("tsuser: twin %d incomplete %d\n", textsearch_register(&twin),
		textsearch_register(&incomplete));
	pr_info("tsuser: empty %ld\n", PTR_ERR(textsearch_prepare("naive", "x", 0, GFP_KERNEL, 0)));
	pr_info("tsuser: unknown %ld\n", PTR_ERR(textsearch_prepare("nosuch", "x", 1, GFP_KERNEL, 0)));
	pr_info("tsuser: autoload %ld\n",
		PTR_ERR(textsearch_prepare("nosuch", "x", 1, GFP_KERNEL, TS_AUTOLOAD)));
	pr_info("tsuser: too long %ld\n",
		PTR_ERR(textsearch_prepare("naive", text, sizeof(text) - 1, GFP_KERNEL, 0)));
	conf = textsearch_prepare("naive", "chicken", 7, GFP_KERNEL, TS_AUTOLOAD);
	if (IS_ERR(conf))
		return PTR_ERR(conf);
	pr_info("tsuser: ops %d pattern %.*s\n", conf->ops == &naive_ops,
		textsearch_get_pattern_len(conf), (char *)textsearch_get_pattern(conf));
	conf->finish = naive_finish;
	first = textsearch_find_continuous(conf, &state, text, sizeof(text) - 1);
	second = textsearch_next(conf, &state);
	third = textsearch_next(conf, &state);
	pr_info("tsuser: found %u %u %u finished %d\n", first, second, third, finished);
	pr_info("tsuser: short %u\n", textsearch_find_continuous(conf, &state, text, 20));
	textsearch_destroy(conf);
	return 0;
}
static void __exit tsuser_exit(void)
{
	int first = textsearch_unregister(&naive_ops);

	pr_info("tsuser: unregister %d again %d\n", first, textsearch_unregister(&naive_ops));
}
module_init(tsuser_init);
module_exit(tsuser_exit);
"""


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_module_registers_an_algorithm_and_searches_with_it(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "tsuser", TS_USER, flavour)
    assert lines == [
        "tsuser: register 0",
        "tsuser: twin -17 incomplete -22",             # -EEXIST for the name, -EINVAL: no find
        "tsuser: empty -22",                           # a zero-length pattern
        "tsuser: unknown -2",
        "tsuser: autoload -2",                         # modprobe ts_nosuch found nothing
        "tsuser: too long -7",                         # the algorithm's own init error
        "tsuser: ops 1 pattern chicken",
        "tsuser: found 19 28 4294967295 finished 3",   # each find ends with finish()
        "tsuser: short 4294967295",                    # the match lies past the 20 bytes
        "tsuser: destroy 7",
        "tsuser: unregister 0 again -2",
    ]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


def _amanda(flavour: str, tmp_path, kloader_module_tree, name: str) -> None:
    """Load NAME (an amanda helper) with its dependencies, ts_kmp in the module
    tree for modprobe; check the searches hold ts_kmp; remove all clean."""
    modules, build = corpus(flavour)
    release = KernelProfile(build).release
    tree = kloader_module_tree(next(modules.rglob("ts_kmp.ko*")), release=release)
    kernel = Kernel(KernelOptions(kernel=str(build), module_dir=str(tree)))
    images = with_dependencies(modules, name)
    held: list[int] = []

    async def main() -> None:
        names = [await kernel.init_module(image) for image in images]
        held.append(kernel.get_module("ts_kmp").refcount)
        for loaded in reversed(names):
            await kernel.delete_module(loaded)
        held.append(kernel.get_module("ts_kmp").refcount)
        await kernel.delete_module("ts_kmp")
        await kernel.shutdown()
    trio.run(main)
    # nf_conntrack_amanda prepares one search per keyword of its protocol (six:
    # CONNECT, the newline, DATA, MESG, INDEX, STATE), each holding ts_kmp, and
    # destroys them all at exit.
    assert held == [6, 0]
    log = [r.text for r in kernel.log.records()]
    assert not [line for line in log if "not emulated" in line or "leaked" in line]
    assert not [e for e in kernel.registrations.all() if e.owner is not None]
    problems = Problems.of_kernel(kernel)
    assert not problems, problems


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
@pytest.mark.parametrize("name", ["nf_conntrack_amanda", "nf_nat_amanda"])
def test_debians_amanda_helpers_load_with_ts_kmp_and_go_clean(flavour, name, tmp_path, kloader_module_tree):
    _amanda(flavour, tmp_path, kloader_module_tree, name)
