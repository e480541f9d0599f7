// Placeholder until the selcopy task lands: creating it is refused.
#include "tasks/task_impl.h"

static int stub_create(Task *t, char *err, int errlen) {
    (void)t;
    return task_errf(err, errlen, "task.name: selcopy is not implemented yet");
}

const TaskOps selcopy_ops = {.name = "selcopy", .create = stub_create};
