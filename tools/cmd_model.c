/* cmd_model.c -- placeholder until 'attnctl model' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_model(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl model: not available in this build yet\n");
    return 1;
}
