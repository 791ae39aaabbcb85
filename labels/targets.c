#include "labels/targets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels/config.h"
#include "common/log.h"
#include "labels/relabel.h"

static int load(const char *path, struct anorak_file_config **out)
{
	char err[512];
	int ret = path ? anorak_config_load(path, out, err, sizeof(err))
		       : anorak_config_parse(anorak_default_config, strlen(anorak_default_config), out, err,
					     sizeof(err));

	if (ret)
		log_error("invalid configuration", "file=\"%s\" err=\"%s\"", path ? path : "(built-in)", err);
	return ret;
}

int target_labeler_init(struct target_labeler *t, const char *path)
{
	memset(t, 0, sizeof(*t));
	if (path && !(t->path = strdup(path)))
		return -ENOMEM;
	int err = load(path, &t->config);
	if (err) {
		free(t->path);
		return err;
	}
	pthread_rwlock_init(&t->lock, NULL);
	return 0;
}

void target_labeler_destroy(struct target_labeler *t)
{
	anorak_config_free(t->config);
	free(t->path);
	pthread_rwlock_destroy(&t->lock);
}

int target_labeler_reload(struct target_labeler *t)
{
	struct anorak_file_config *fresh;
	int err = load(t->path, &fresh);

	if (err) {
		log_warn("keeping the running configuration", "file=\"%s\"", t->path ? t->path : "(built-in)");
		return err;
	}
	pthread_rwlock_wrlock(&t->lock);
	struct anorak_file_config *old = t->config;
	t->config = fresh;
	pthread_rwlock_unlock(&t->lock);
	anorak_config_free(old);
	log_info("configuration reloaded", "file=\"%s\"", t->path ? t->path : "(built-in)");
	return 0;
}

int host_discovered_labels(const struct host_process *hp, struct labelset *out)
{
	char pid[16];
	int err = 0;

	snprintf(pid, sizeof(pid), "%u", hp->pid);
	err = err ?: labelset_set(out, "__address__", hp->address);
	err = err ?: labelset_set(out, "__meta_process_pid", pid);
	err = err ?: labelset_set(out, "__meta_process_comm", hp->comm);
	err = err ?: labelset_set(out, "__meta_process_executable", hp->executable);
	err = err ?: labelset_set(out, "__meta_process_cgroup", hp->cgroup_path);
	err = err ?: labelset_set(out, "__meta_systemd_unit", hp->cgroup->systemd_unit);
	err = err ?: labelset_set(out, "__meta_container_id", hp->cgroup->container_id);
	return err;
}

void target_labeler_job_name(struct target_labeler *t, char *out, size_t outlen)
{
	pthread_rwlock_rdlock(&t->lock);
	snprintf(out, outlen, "%s", t->config->job_name);
	pthread_rwlock_unlock(&t->lock);
}

/* Relabels a copy of discovered into final; the value __sampling_frequency__ had when the rules were
 * done (before finalizing removes it) goes to frequency when it is not NULL. */
static int relabel_target(struct target_labeler *t, const struct labelset *discovered, struct labelset *final,
			  char *frequency, size_t frequency_len)
{
	char why[256];
	int kept;

	pthread_rwlock_rdlock(&t->lock);
	kept = labelset_copy(final, discovered);
	if (kept == 0)
		kept = relabel_prepare(final, t->config->job_name);
	if (kept == 0)
		kept = relabel_process(&t->config->rules, final);
	pthread_rwlock_unlock(&t->lock);
	if (kept == 1 && frequency) {
		const char *v = labelset_get(final, TARGET_SAMPLING_FREQUENCY_LABEL);

		snprintf(frequency, frequency_len, "%s", v ? v : "");
	}
	if (kept == 1 && relabel_finalize(final, why, sizeof(why))) {
		log_debug("target rejected after relabeling", "err=\"%s\"", why);
		kept = 0;
	}
	if (kept <= 0)
		labelset_free(final);
	return kept;
}

int target_labeler_apply(struct target_labeler *t, const struct labelset *discovered, struct labelset *final)
{
	return relabel_target(t, discovered, final, NULL, 0);
}

struct target *target_make(struct target_labeler *t, struct labelset *discovered)
{
	struct target *target = calloc(1, sizeof(*target));

	if (!target) {
		labelset_free(discovered);
		return NULL;
	}
	atomic_init(&target->refs, 1);
	target->discovered = *discovered;
	*discovered = (struct labelset){ 0 };
	int kept = relabel_target(t, &target->discovered, &target->labels, target->sampling_frequency,
				  sizeof(target->sampling_frequency));
	if (kept < 0) {
		target_put(target);
		return NULL;
	}
	target->dropped = kept == 0;
	return target;
}

struct target *target_get(struct target *target)
{
	atomic_fetch_add(&target->refs, 1);
	return target;
}

void target_put(struct target *target)
{
	if (!target || atomic_fetch_sub(&target->refs, 1) != 1)
		return;
	labelset_free(&target->discovered);
	labelset_free(&target->labels);
	free(target);
}

int target_sampling_frequency(const struct target *t, unsigned base_frequency, unsigned max_frequency)
{
	const char *v = t->sampling_frequency;
	unsigned long hz;
	char *end;

	if (!v[0] || t->dropped)
		return 0;
	if (v[0] < '0' || v[0] > '9')
		return -EINVAL;
	errno = 0;
	hz = strtoul(v, &end, 10);
	if (*end || errno || hz == 0 || hz > max_frequency)
		return -EINVAL;
	return hz == base_frequency ? 0 : (int)hz;
}
