// Placeholder until the counting task lands: creating it is refused.
#include "tasks/task_impl.h"

static int stub_create(Task *t, char *err, int errlen) {
    (void)t;
    return task_errf(err, errlen, "task.name: counting is not implemented yet");
}

const TaskOps counting_ops = {.name = "counting", .create = stub_create};
