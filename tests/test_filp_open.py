"""filp_open and filp_close (kloaderd/fs/open.py): a module opens files of
the kernel's tree by path and gets Linux's errnos for what is not there or
not allowed; a device node's driver sees .open, .flush and .release, and
holds its module while open.  Debian's target_core_mod checks its
/etc/target database root with them at init: it and the fabric and backend
modules over it load and unload clean under 6.1 and 6.12."""

from __future__ import annotations

import errno

import pytest
import trio

from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel, KernelOptions
from realkernel import corpus, load_then_remove, run_kbuilt, with_dependencies

FILPO = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/fs.h>
#include <linux/err.h>
#include <linux/miscdevice.h>
MODULE_LICENSE("GPL");

static int fo_open(struct inode *inode, struct file *file)
{
	pr_info("filpo: .open refs %d\n", module_refcount(THIS_MODULE));
	return 0;
}
static int fo_flush(struct file *file, fl_owner_t id)
{
	pr_info("filpo: .flush\n");
	return 7;
}
static int fo_release(struct inode *inode, struct file *file)
{
	pr_info("filpo: .release refs %d\n", module_refcount(THIS_MODULE));
	return 0;
}
static const struct file_operations fo_fops = {
	.owner = THIS_MODULE, .open = fo_open, .flush = fo_flush, .release = fo_release,
};
static struct miscdevice fo_misc = { .minor = MISC_DYNAMIC_MINOR, .name = "filpo", .fops = &fo_fops };
static struct file *kept;

static void try(const char *path, int flags, umode_t mode)
{
	struct file *file = filp_open(path, flags, mode);
	char type;

	if (IS_ERR(file)) {
		pr_info("filpo: %s %ld\n", path, PTR_ERR(file));
		return;
	}
	type = S_ISDIR(file_inode(file)->i_mode) ? 'd' : S_ISREG(file_inode(file)->i_mode) ? 'r' :
	       S_ISCHR(file_inode(file)->i_mode) ? 'c' : '?';
	pr_info("filpo: %s %c refs %d", path, type, module_refcount(THIS_MODULE));
	pr_cont(" close %d refs %d\n", filp_close(file, NULL), module_refcount(THIS_MODULE));
}

static int __init filpo_init(void)
{
	int err = misc_register(&fo_misc);

	if (err)
		return err;
	try("/etc/target", O_RDONLY, 0);
	try("/proc", O_RDONLY, 0);
	try("proc/modules", O_RDONLY, 0);
	try("/proc/modules", O_RDONLY | O_DIRECTORY, 0);
	try("/proc/modules/x", O_RDONLY, 0);
	try("/proc", O_WRONLY, 0);
	try("/proc/modules", O_WRONLY, 0);
	try("/proc/filpo", O_WRONLY | O_CREAT, 0644);
	try("/etc/target/x", O_WRONLY | O_CREAT, 0644);
	try("/proc/modules", O_WRONLY | O_CREAT | O_EXCL, 0644);
	try("/dev/filpo", O_RDWR, 0);          /* its own device: it is not live yet */
#ifdef LEAK
	kept = filp_open("/proc", O_RDONLY, 0);
#endif
	return 0;
}
static void __exit filpo_exit(void) { misc_deregister(&fo_misc); }
module_init(filpo_init);
module_exit(filpo_exit);
"""

EXPECTED = [
    f"filpo: /etc/target -{errno.ENOENT}",            # no such file in kloader's root
    "filpo: /proc d refs 0 close 0 refs 0",
    "filpo: proc/modules r refs 0 close 0 refs 0",    # relative: from /
    f"filpo: /proc/modules -{errno.ENOTDIR}",         # O_DIRECTORY
    f"filpo: /proc/modules/x -{errno.ENOTDIR}",
    f"filpo: /proc -{errno.EISDIR}",                  # a directory opened for writing
    f"filpo: /proc/modules -{errno.EACCES}",          # mode 0444
    f"filpo: /proc/filpo -{errno.EACCES}",            # procfs has no ->create
    f"filpo: /etc/target/x -{errno.ENOENT}",
    f"filpo: /proc/modules -{errno.EEXIST}",          # O_CREAT | O_EXCL
    f"filpo: /dev/filpo -{errno.ENODEV}",             # fops_get of a module still in its init
]

# A second module opens the first one's device: the driver's .open, .flush
# (whose 7 filp_close returns) and .release run, and the open file holds the
# driver's module from before .open until after .release (fops_get, fops_put):
# the driver then unloads.
FILPD = r"""
#include <linux/module.h>
#include <linux/init.h>
#include <linux/fs.h>
#include <linux/err.h>
MODULE_LICENSE("GPL");
static int __init filpd_init(void)
{
	struct file *file = filp_open("/dev/filpo", O_RDWR, 0);

	if (IS_ERR(file))
		return PTR_ERR(file);
	pr_info("filpd: opened\n");
	pr_info("filpd: close %d\n", filp_close(file, NULL));
	return 0;
}
static void __exit filpd_exit(void) {}
module_init(filpd_init);
module_exit(filpd_exit);
"""


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_module_opens_and_closes_files_by_path(tmp_path, flavour):
    kernel, lines = run_kbuilt(tmp_path, "filpo", FILPO, flavour)
    assert lines == EXPECTED
    assert not Problems.of_kernel(kernel)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_a_device_opened_by_path_runs_its_drivers_file_operations(tmp_path, flavour):
    from test_kbuild import kmodbuild
    _, build = corpus(flavour)
    images = []
    for name, source in (("filpo", FILPO), ("filpd", FILPD)):
        (tmp_path / f"{name}.c").write_text(source)
        done = kmodbuild("--kernel", str(build), str(tmp_path / f"{name}.c"), "-o",
                         str(tmp_path / f"{name}.ko"))
        assert done.returncode == 0, done.stderr
        images.append((tmp_path / f"{name}.ko").read_bytes())
    kernel, errors = load_then_remove(build, images)
    assert not errors, errors
    lines = [r.text for r in kernel.log.records() if r.text.startswith(("filpd: ", "filpo: ."))]
    assert lines == ["filpo: .open refs 1", "filpd: opened", "filpo: .flush", "filpo: .release refs 1",
                     "filpd: close 7"]
    assert not kernel.modules()
    assert not Problems.of_kernel(kernel)


@pytest.mark.slow
def test_a_file_its_module_leaves_open_is_reported(tmp_path):
    kernel, lines = run_kbuilt(tmp_path, "filpo", "#define LEAK\n" + FILPO, "6.1")
    assert lines[-1] == "filpo: leaked registration: open file /proc (filp_close)"
    assert not list(kernel.registrations.registry("file").entries())


# target_core_mod, then what depends on it.  xen-scsiback refuses outside a
# Xen domain (-ENODEV), as on any machine that is not one.
TARGET = ["target_core_mod", "target_core_file", "target_core_iblock", "target_core_pscsi",
          "iscsi_target_mod", "vhost_scsi", "xen-scsiback"]


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_target_core_and_its_modules_load_and_unload_clean(flavour):
    modules, build = corpus(flavour)
    order: list[str] = []
    for name in TARGET:
        for image in with_dependencies(modules, name):
            if image not in order:
                order.append(image)
    kernel = Kernel(KernelOptions(kernel=str(build)))
    loaded: list[str] = []
    refused: dict[str, int] = {}

    async def main() -> None:
        from kloaderd.errors import KernelError
        for image in order:
            try:
                loaded.append(await kernel.init_module(image))
            except KernelError as exc:
                refused[image.split(b"\0name=")[1].split(b"\0")[0].decode()] = exc.errno
        names = {m["name"] for m in kernel.modules()}
        assert {"target_core_mod", "target_core_file", "target_core_iblock", "target_core_pscsi",
                "iscsi_target_mod", "vhost_scsi"} <= names
        for name in reversed(loaded):
            await kernel.delete_module(name)
        await kernel.shutdown()
    trio.run(main)
    assert refused == {"xen_scsiback": errno.ENODEV}
    log = [r.text for r in kernel.log.records()]
    assert "db_root: cannot open: /etc/target" in log            # filp_open's -ENOENT, as Linux answers
    assert not kernel.modules()
    assert not [e.what for e in kernel.registrations.all() if e.owner is not None]
    assert not Problems.of_kernel(kernel)
