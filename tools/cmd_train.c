/* cmd_train.c -- placeholder until 'attnctl train' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_train(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl train: not available in this build yet\n");
    return 1;
}
