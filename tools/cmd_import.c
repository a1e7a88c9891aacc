/* cmd_import.c -- placeholder until 'attnctl import' lands; says so and fails. */
#include <stdio.h>
#include "tools/cmd.h"

int cmd_import(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "attnctl import: not available in this build yet\n");
    return 1;
}
