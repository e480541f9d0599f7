// Placeholder until the lm task lands: creating it is refused.
#include "tasks/task_impl.h"

static int stub_create(Task *t, char *err, int errlen) {
    (void)t;
    return task_errf(err, errlen, "task.name: lm is not implemented yet");
}

const TaskOps lm_ops = {.name = "lm", .create = stub_create};
